"""EKS pieces of the `Cluster` component: IAM roles, the control plane, a node group, OIDC for IRSA."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra.config import EksConfig

_MANAGED = "arn:aws:iam::aws:policy/"


@dataclass(frozen=True)
class EksParts:
    """What the rest of the program needs from EKS."""

    cluster_name: pulumi.Output[str]
    kubeconfig: pulumi.Output[str]
    oidc_provider_arn: pulumi.Output[str]
    oidc_issuer: pulumi.Output[str]
    cluster_security_group_id: pulumi.Output[str]
    node_group: aws.eks.NodeGroup


def assume_role_policy(service: str) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}],
        }
    )


def kubeconfig(name: str, endpoint: str, ca_data: str, region: str) -> str:
    """A kubeconfig that authenticates through `aws eks get-token` (no long-lived credentials)."""
    user = {
        "exec": {
            "apiVersion": "client.authentication.k8s.io/v1beta1",
            "command": "aws",
            "args": ["eks", "get-token", "--cluster-name", name, "--region", region],
        }
    }
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": name, "cluster": {"server": endpoint, "certificate-authority-data": ca_data}}],
            "users": [{"name": name, "user": user}],
            "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
            "current-context": name,
        }
    )


def _role(name: str, service: str, policies: list[str], parent: pulumi.Resource) -> aws.iam.Role:
    role = aws.iam.Role(
        name, assume_role_policy=assume_role_policy(service), opts=pulumi.ResourceOptions(parent=parent)
    )
    for policy in policies:
        aws.iam.RolePolicyAttachment(
            f"{name}-{policy.lower()}",
            role=role.name,
            policy_arn=_MANAGED + policy,
            opts=pulumi.ResourceOptions(parent=role),
        )
    return role


def create_eks(
    name: str,
    cfg: EksConfig,
    region: str,
    private_subnet_ids: list[pulumi.Output[str]],
    public_subnet_ids: list[pulumi.Output[str]],
    parent: pulumi.Resource,
) -> EksParts:
    """The control plane (secrets encrypted with a rotated KMS key), managed nodes in private subnets,
    the VPC CNI with NetworkPolicy enforcement on, and the OIDC provider IRSA roles trust."""
    child = pulumi.ResourceOptions(parent=parent)
    key = aws.kms.Key(f"{name}-secrets", description=f"{name} Kubernetes secrets", enable_key_rotation=True, opts=child)
    cluster_role = _role(f"{name}-control-plane", "eks.amazonaws.com", ["AmazonEKSClusterPolicy"], parent)
    cluster = aws.eks.Cluster(
        name,
        name=name,
        version=cfg.version,
        role_arn=cluster_role.arn,
        vpc_config={
            "subnet_ids": [*private_subnet_ids, *public_subnet_ids],
            "endpoint_private_access": True,
            "endpoint_public_access": True,
            "public_access_cidrs": list(cfg.public_access_cidrs),
        },
        encryption_config={"provider": {"key_arn": key.arn}, "resources": ["secrets"]},
        enabled_cluster_log_types=["api", "audit", "authenticator"],
        access_config={
            "authentication_mode": "API_AND_CONFIG_MAP",
            "bootstrap_cluster_creator_admin_permissions": True,
        },
        opts=child,
    )
    node_role = _role(
        f"{name}-nodes",
        "ec2.amazonaws.com",
        ["AmazonEKSWorkerNodePolicy", "AmazonEKS_CNI_Policy", "AmazonEC2ContainerRegistryReadOnly"],
        parent,
    )
    nodes = aws.eks.NodeGroup(
        f"{name}-nodes",
        cluster_name=cluster.name,
        node_role_arn=node_role.arn,
        subnet_ids=private_subnet_ids,
        instance_types=list(cfg.instance_types),
        scaling_config={"min_size": cfg.min_nodes, "desired_size": cfg.desired_nodes, "max_size": cfg.max_nodes},
        update_config={"max_unavailable": 1},
        opts=child,
    )
    aws.eks.Addon(
        f"{name}-vpc-cni",
        cluster_name=cluster.name,
        addon_name="vpc-cni",
        configuration_values=json.dumps({"enableNetworkPolicy": "true"}),
        resolve_conflicts_on_update="OVERWRITE",
        opts=child,
    )
    issuer = cluster.identities.apply(lambda ids: ids[0].oidcs[0].issuer)
    oidc = aws.iam.OpenIdConnectProvider(f"{name}-oidc", url=issuer, client_id_lists=["sts.amazonaws.com"], opts=child)
    config = pulumi.Output.all(cluster.name, cluster.endpoint, cluster.certificate_authority.data).apply(
        lambda parts: kubeconfig(parts[0], parts[1], parts[2], region)
    )
    return EksParts(
        cluster_name=cluster.name,
        kubeconfig=pulumi.Output.secret(config),
        oidc_provider_arn=oidc.arn,
        oidc_issuer=issuer,
        cluster_security_group_id=cluster.vpc_config.cluster_security_group_id,
        node_group=nodes,
    )
