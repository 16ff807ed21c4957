"""The production VPC: public subnets for load balancers, private ones for the nodes, isolated ones for RDS.

The database subnets hold nothing but RDS and have no route out of the VPC, so "may reach 5432 in the database
subnets" (the platform's NetworkPolicy egress) means "may reach PostgreSQL" and nothing else.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra.component import Component


@dataclass(frozen=True)
class VpcArgs:
    """A /16 (or larger) CIDR split into /20 subnets across `zones`."""

    cidr: str
    zones: tuple[str, ...]
    cluster_name: str


def subnet_cidrs(cidr: str, count: int) -> list[str]:
    """The first `count` /20 blocks of `cidr`."""
    blocks = ipaddress.ip_network(cidr).subnets(new_prefix=20)
    return [str(next(blocks)) for _ in range(count)]


class Vpc(Component):
    """A VPC with an internet gateway, one NAT gateway and EKS subnet tags; one subnet of each tier per zone."""

    vpc_id: pulumi.Output[str]
    cidr: str
    public_subnet_ids: list[pulumi.Output[str]]
    private_subnet_ids: list[pulumi.Output[str]]
    database_subnet_ids: list[pulumi.Output[str]]
    database_cidrs: list[str]

    def __init__(self, name: str, args: VpcArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("aicash:network:Vpc", name, opts)
        child = self.child_opts()
        zones = len(args.zones)
        cidrs = subnet_cidrs(args.cidr, 3 * zones)  # public, private, database
        cluster_tag = {f"kubernetes.io/cluster/{args.cluster_name}": "shared"}

        vpc = aws.ec2.Vpc(
            f"{name}-vpc",
            cidr_block=args.cidr,
            enable_dns_hostnames=True,
            enable_dns_support=True,
            tags={"Name": name},
            opts=child,
        )
        gateway = aws.ec2.InternetGateway(f"{name}-igw", vpc_id=vpc.id, opts=child)
        public_routes = aws.ec2.RouteTable(
            f"{name}-public",
            vpc_id=vpc.id,
            routes=[{"cidr_block": "0.0.0.0/0", "gateway_id": gateway.id}],
            opts=child,
        )
        public, private = [], []
        for index, zone in enumerate(args.zones):
            public.append(
                aws.ec2.Subnet(
                    f"{name}-public-{zone}",
                    vpc_id=vpc.id,
                    cidr_block=cidrs[index],
                    availability_zone=zone,
                    tags={**cluster_tag, "kubernetes.io/role/elb": "1"},
                    opts=child,
                )
            )
            aws.ec2.RouteTableAssociation(
                f"{name}-public-{zone}", subnet_id=public[-1].id, route_table_id=public_routes.id, opts=child
            )
        nat_ip = aws.ec2.Eip(f"{name}-nat", domain="vpc", opts=child)
        nat = aws.ec2.NatGateway(f"{name}-nat", subnet_id=public[0].id, allocation_id=nat_ip.id, opts=child)
        private_routes = aws.ec2.RouteTable(
            f"{name}-private",
            vpc_id=vpc.id,
            routes=[{"cidr_block": "0.0.0.0/0", "nat_gateway_id": nat.id}],
            opts=child,
        )
        for index, zone in enumerate(args.zones):
            private.append(
                aws.ec2.Subnet(
                    f"{name}-private-{zone}",
                    vpc_id=vpc.id,
                    cidr_block=cidrs[zones + index],
                    availability_zone=zone,
                    tags={**cluster_tag, "kubernetes.io/role/internal-elb": "1"},
                    opts=child,
                )
            )
            aws.ec2.RouteTableAssociation(
                f"{name}-private-{zone}", subnet_id=private[-1].id, route_table_id=private_routes.id, opts=child
            )
        # no route beyond the VPC's own `local` route: RDS needs none, and nothing else lives here
        isolated_routes = aws.ec2.RouteTable(f"{name}-database", vpc_id=vpc.id, opts=child)
        database = []
        for index, zone in enumerate(args.zones):
            database.append(
                aws.ec2.Subnet(
                    f"{name}-database-{zone}",
                    vpc_id=vpc.id,
                    cidr_block=cidrs[2 * zones + index],
                    availability_zone=zone,
                    tags={"Name": f"{name}-database-{zone}", "aicash.io/tier": "database"},
                    opts=child,
                )
            )
            aws.ec2.RouteTableAssociation(
                f"{name}-database-{zone}", subnet_id=database[-1].id, route_table_id=isolated_routes.id, opts=child
            )

        self.vpc_id = vpc.id
        self.cidr = args.cidr
        self.public_subnet_ids = [subnet.id for subnet in public]
        self.private_subnet_ids = [subnet.id for subnet in private]
        self.database_subnet_ids = [subnet.id for subnet in database]
        self.database_cidrs = cidrs[2 * zones :]
        self.register_outputs(
            {
                "vpc_id": self.vpc_id,
                "private_subnet_ids": self.private_subnet_ids,
                "database_subnet_ids": self.database_subnet_ids,
            }
        )
