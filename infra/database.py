"""`Database`: the one PostgreSQL server every workload and KFP use.

`local` runs PostgreSQL as a StatefulSet in the platform namespace (reachable only from platform
workloads, see `NetworkPolicies`); `aws` creates an encrypted, private, backed-up RDS instance that
forces TLS, in the VPC's isolated database subnets.

Who reaches RDS on `aws`, in two layers. Its security group admits the EKS cluster security group only; that
is as narrow as a security group gets here, because with the VPC CNI a pod's traffic leaves through its node's
network interface and so carries the node's group (every pod on every node, unless security groups for pods
are configured). In the platform namespace the NetworkPolicies narrow it: only pods labelled
`aicash.io/platform-client` may open 5432, and only towards the database subnets. Kubeflow Pipelines (which
needs the database) and namespaces this program does not manage have no such fence; there, the password and
TLS are what stand between a pod and the database.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from urllib.parse import quote

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from infra import kube
from infra.component import Component
from infra.config import Cloud, DatabaseConfig, Resources

POSTGRES_PORT = 5432
POSTGRES_UID = 999  # the postgres user of the official Debian image
NAME = "postgres"
# Each workload's own login (by the variable its URL travels in) and the role it is in (migration 0004_roles).
# `aicash db grant-logins`, run by the migrations Job as the owner, creates them from these very URLs.
LOGINS: dict[str, tuple[str, str]] = {
    "SERVING_DATABASE_URL": ("aicash_inference", "aicash_serving"),  # the inference service
    "ADMIN_DATABASE_URL": ("aicash_inference_admin", "aicash_training"),  # its admin operations
    "TRAINING_DATABASE_URL": ("aicash_pipelines", "aicash_training"),  # KFP's training steps
    "MONITORING_DATABASE_URL": ("aicash_monitor", "aicash_monitoring"),  # the monitoring CronJobs
}
LOGINS_SECRET = "aicash-database-logins"  # noqa: S105 - a Secret's name


@dataclass(frozen=True)
class DatabaseArgs:
    """The server's settings; the AWS fields are needed only on `aws`."""

    cloud: Cloud
    namespace: str
    password: pulumi.Output[str]
    config: DatabaseConfig = field(default_factory=DatabaseConfig)
    identifier: str = "aicash"
    vpc_id: pulumi.Input[str] | None = None
    subnet_ids: list[pulumi.Output[str]] = field(default_factory=list)
    client_security_group_id: pulumi.Input[str] | None = None


def database_url(user: str, password: str, host: str, port: int, name: str, sslmode: str) -> str:
    """A SQLAlchemy/libpq URL; the password is percent-encoded."""
    return f"postgresql://{quote(user, safe='')}:{quote(password, safe='')}@{host}:{port}/{name}?sslmode={sslmode}"


def login_password(owner_password: str, login: str) -> str:
    """A login's password, derived from the owner's (aicash:dbPassword) by HMAC-SHA256: one per login, 64 hex
    characters, and no login's password gives back the owner's or another login's. Rotating dbPassword rotates them
    all (the migrations Job of the next `pulumi up` sets them again)."""
    return hmac.new(owner_password.encode(), f"aicash-login:{login}".encode(), hashlib.sha256).hexdigest()


def login_env(*pairs: tuple[str, str]) -> list[dict[str, object]]:
    """Container `env` entries (variable, key of LOGINS_SECRET): a workload takes only its own login's URL."""
    return [{"name": name, "valueFrom": {"secretKeyRef": {"name": LOGINS_SECRET, "key": key}}} for name, key in pairs]


class Database(Component):
    """Outputs the connection parts; `url` is a secret."""

    host: pulumi.Output[str]
    port: int = POSTGRES_PORT
    name: str
    username: str
    sslmode: str
    url: pulumi.Output[str]
    login_urls: dict[str, pulumi.Output[str]]  # LOGINS' variable -> the login's URL (secret)

    def __init__(self, name: str, args: DatabaseArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("aicash:database:Database", name, opts)
        self.name = args.config.name
        self.username = args.config.username
        if args.cloud == "aws":
            self.sslmode = "require"
            self.host = self._rds(name, args)
        else:
            self.sslmode = "disable"  # in-cluster traffic, fenced by NetworkPolicies
            self.host = self._in_cluster(name, args)
        self.url = pulumi.Output.secret(
            pulumi.Output.all(self.host, args.password).apply(
                lambda parts: database_url(self.username, parts[1], parts[0], self.port, self.name, self.sslmode)
            )
        )
        self.login_urls = {variable: self._login_url(login, args.password) for variable, (login, _) in LOGINS.items()}
        self.register_outputs({"host": self.host, "port": self.port, "name": self.name})

    def _login_url(self, login: str, owner_password: pulumi.Output[str]) -> pulumi.Output[str]:
        return pulumi.Output.secret(
            pulumi.Output.all(self.host, owner_password).apply(
                lambda parts: database_url(login, login_password(parts[1], login), parts[0], self.port, self.name,
                                           self.sslmode)
            )
        )

    def _in_cluster(self, name: str, args: DatabaseArgs) -> pulumi.Output[str]:
        opts = self.child_opts()
        ns, cfg = args.namespace, args.config
        credentials = k8s.core.v1.Secret(
            f"{name}-credentials",
            metadata=kube.meta("postgres-credentials", ns, "database"),
            string_data={"POSTGRES_PASSWORD": args.password, "POSTGRES_USER": cfg.username, "POSTGRES_DB": cfg.name},
            opts=opts,
        )
        k8s.core.v1.Service(
            f"{name}-service",
            metadata=kube.meta(NAME, ns, "database"),
            spec={
                "selector": kube.selector(NAME),
                "ports": [{"name": "postgres", "port": POSTGRES_PORT, "targetPort": POSTGRES_PORT}],
            },
            opts=opts,
        )
        ready = kube.exec_probe(["pg_isready", "-U", cfg.username, "-d", cfg.name, "-h", "127.0.0.1"])
        server = kube.container(
            NAME,
            cfg.image,
            Resources("250m", "512Mi", "1", "1Gi"),
            ports=[{"name": "postgres", "containerPort": POSTGRES_PORT}],
            env=[{"name": "PGDATA", "value": "/var/lib/postgresql/data/pgdata"}],
            env_from=[{"secretRef": {"name": "postgres-credentials"}}],
            liveness={**ready, "initialDelaySeconds": 30},
            readiness=ready,
            mounts=[{"name": "data", "mountPath": "/var/lib/postgresql/data"}],
        )
        k8s.apps.v1.StatefulSet(
            f"{name}-statefulset",
            metadata=kube.meta(NAME, ns, "database"),
            spec=kube.stateful_spec(NAME, "database", server, uid=POSTGRES_UID, storage_gb=cfg.storage_gb),
            opts=self.child_opts(depends_on=[credentials]),
        )
        return pulumi.Output.from_input(f"{NAME}.{ns}.svc.cluster.local")

    def _rds(self, name: str, args: DatabaseArgs) -> pulumi.Output[str]:
        opts = self.child_opts()
        cfg = args.config
        subnets = aws.rds.SubnetGroup(f"{name}-subnets", subnet_ids=args.subnet_ids, opts=opts)
        firewall = aws.ec2.SecurityGroup(
            f"{name}-firewall",
            description="PostgreSQL from the EKS cluster only",
            vpc_id=args.vpc_id,
            ingress=[
                {
                    "protocol": "tcp",
                    "from_port": POSTGRES_PORT,
                    "to_port": POSTGRES_PORT,
                    "security_groups": [args.client_security_group_id],
                    "description": "EKS nodes and their pods; NetworkPolicy admits only platform workloads",
                }
            ],
            opts=opts,
        )
        parameters = aws.rds.ParameterGroup(
            f"{name}-parameters",
            family=f"postgres{cfg.engine_version}",
            parameters=[{"name": "rds.force_ssl", "value": "1"}],
            opts=opts,
        )
        instance = aws.rds.Instance(
            f"{name}-rds",
            identifier=args.identifier,
            engine="postgres",
            engine_version=cfg.engine_version,
            instance_class=cfg.instance_class,
            allocated_storage=cfg.storage_gb,
            max_allocated_storage=cfg.storage_gb * 5,
            storage_type="gp3",
            storage_encrypted=True,
            db_name=cfg.name,
            username=cfg.username,
            password=args.password,
            db_subnet_group_name=subnets.name,
            vpc_security_group_ids=[firewall.id],
            parameter_group_name=parameters.name,
            publicly_accessible=False,
            multi_az=cfg.multi_az,
            backup_retention_period=cfg.backup_retention_days,
            backup_window="02:00-03:00",
            copy_tags_to_snapshot=True,
            deletion_protection=True,
            skip_final_snapshot=False,
            final_snapshot_identifier=f"{args.identifier}-final",
            auto_minor_version_upgrade=True,
            performance_insights_enabled=True,
            opts=opts,
        )
        return instance.address
