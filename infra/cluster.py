"""`Cluster`: the Kubernetes provider every other component deploys through, and the platform namespace.

`local` talks to an existing cluster from the kubeconfig (kind, k3d, minikube); `aws` creates a VPC and an
EKS cluster and builds the kubeconfig from it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s

from infra.component import Component
from infra.config import Cloud, EksConfig, IngressConfig
from infra.eks import create_eks
from infra.network import Vpc, VpcArgs

# Pinned charts for the optional add-ons (ingress controller and certificate manager).
INGRESS_NGINX_CHART = ("ingress-nginx", "4.11.3", "https://kubernetes.github.io/ingress-nginx")
CERT_MANAGER_CHART = ("cert-manager", "v1.16.1", "https://charts.jetstack.io")


@dataclass(frozen=True)
class ClusterArgs:
    """Where the platform runs."""

    cloud: Cloud
    name: str
    namespace: str
    kube_context: str | None = None
    region: str | None = None
    eks: EksConfig = field(default_factory=EksConfig)
    ingress: IngressConfig = field(default_factory=IngressConfig)
    install_addons: bool = False


class Cluster(Component):
    """A Kubernetes provider and the `restricted` platform namespace (plus VPC and EKS on `aws`)."""

    provider: k8s.Provider
    namespace: str
    vpc_id: pulumi.Output[str] | None = None
    vpc_cidr: str | None = None
    private_subnet_ids: list[pulumi.Output[str]]
    database_subnet_ids: list[pulumi.Output[str]]
    database_cidrs: list[str]
    oidc_provider_arn: pulumi.Output[str] | None = None
    oidc_issuer: pulumi.Output[str] | None = None
    cluster_security_group_id: pulumi.Output[str] | None = None
    kubeconfig: pulumi.Output[str] | None = None

    def __init__(self, name: str, args: ClusterArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("aicash:cluster:Cluster", name, opts)
        self.private_subnet_ids, self.database_subnet_ids, self.database_cidrs = [], [], []
        if args.cloud == "aws":
            self.provider = self._eks(name, args)
        else:
            self.provider = k8s.Provider(f"{name}-kubeconfig", context=args.kube_context, opts=self.child_opts())
        k8s_opts = pulumi.ResourceOptions(parent=self, provider=self.provider)
        k8s.core.v1.Namespace(
            f"{name}-namespace",
            metadata={
                "name": args.namespace,
                "labels": {
                    "app.kubernetes.io/part-of": "aicash",
                    "pod-security.kubernetes.io/enforce": "restricted",
                    "pod-security.kubernetes.io/audit": "restricted",
                },
            },
            opts=k8s_opts,
        )
        self.namespace = args.namespace
        if args.install_addons:
            self._addons(name, args.ingress, k8s_opts)
        self.register_outputs({"namespace": self.namespace})

    def _eks(self, name: str, args: ClusterArgs) -> k8s.Provider:
        region = args.region or "eu-west-1"
        vpc = Vpc(
            f"{name}-network",
            VpcArgs(cidr=args.eks.vpc_cidr, zones=(f"{region}a", f"{region}b"), cluster_name=args.name),
            opts=self.child_opts(),
        )
        eks = create_eks(args.name, args.eks, region, vpc.private_subnet_ids, vpc.public_subnet_ids, self)
        self.vpc_id = vpc.vpc_id
        self.vpc_cidr = vpc.cidr
        self.private_subnet_ids = vpc.private_subnet_ids
        self.database_subnet_ids = vpc.database_subnet_ids
        self.database_cidrs = vpc.database_cidrs
        self.oidc_provider_arn = eks.oidc_provider_arn
        self.oidc_issuer = eks.oidc_issuer
        self.cluster_security_group_id = eks.cluster_security_group_id
        self.kubeconfig = eks.kubeconfig
        return k8s.Provider(
            f"{name}-eks",
            kubeconfig=eks.kubeconfig,
            opts=self.child_opts(depends_on=[eks.node_group]),
        )

    def _addons(self, name: str, ingress: IngressConfig, opts: pulumi.ResourceOptions) -> None:
        """ingress-nginx and cert-manager from pinned Helm charts."""
        for chart, version, repo, namespace, values in (
            (*INGRESS_NGINX_CHART, ingress.controller_namespace, {"controller": {"replicaCount": 2}}),
            (*CERT_MANAGER_CHART, "cert-manager", {"crds": {"enabled": True}}),
        ):
            k8s.helm.v3.Release(
                f"{name}-{chart}",
                name=chart,
                chart=chart,
                version=version,
                repository_opts={"repo": repo},
                namespace=namespace,
                create_namespace=True,
                values=values,
                opts=opts,
            )
