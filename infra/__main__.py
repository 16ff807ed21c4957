"""The aicash platform stack: read the stack's config and compose the components.

Order: cluster -> database, bucket and Redis (Feast's online store) -> settings -> migrations Job -> services and jobs.
"""

import pulumi

from infra.cluster import Cluster, ClusterArgs
from infra.config import load_config
from infra.database import Database, DatabaseArgs
from infra.feature_server import FeatureServer, FeatureServerArgs
from infra.inference import InferenceService, InferenceServiceArgs
from infra.kfp_wiring import KfpWiring
from infra.kubeflow import KubeflowPipelines, KubeflowPipelinesArgs, api_url
from infra.migrations import Migrations, MigrationsArgs
from infra.monitoring import Monitoring, MonitoringArgs
from infra.network_policies import NetworkPolicies, NetworkPoliciesArgs
from infra.object_store import MINIO_PORT, ObjectStore, ObjectStoreArgs
from infra.observability import Observability, ObservabilityArgs
from infra.online_store import OnlineStore, OnlineStoreArgs
from infra.platform_settings import PlatformSettings, PlatformSettingsArgs
from infra.schedules import Schedules, SchedulesArgs

cfg = load_config()
on_aws = cfg.cloud == "aws"
ns, kfp_ns = cfg.namespace, cfg.kfp.namespace
region = cfg.aws_region or "us-east-1"

cluster = Cluster(
    "cluster",
    ClusterArgs(
        cloud=cfg.cloud,
        name=f"aicash-{cfg.stack}",
        namespace=ns,
        kube_context=cfg.kube_context,
        region=cfg.aws_region,
        eks=cfg.eks,
        ingress=cfg.ingress,
        install_addons=cfg.install_addons,
    ),
)
in_cluster = pulumi.ResourceOptions(providers=[cluster.provider], depends_on=[cluster])

database = Database(
    "database",
    DatabaseArgs(
        cloud=cfg.cloud,
        namespace=ns,
        password=cfg.db_password,
        config=cfg.database,
        identifier=f"aicash-{cfg.stack}",
        vpc_id=cluster.vpc_id,
        subnet_ids=cluster.database_subnet_ids,
        client_security_group_id=cluster.cluster_security_group_id,
    ),
    opts=in_cluster,
)
store = ObjectStore(
    "object-store",
    ObjectStoreArgs(
        cloud=cfg.cloud,
        namespace=ns,
        config=cfg.storage,
        minio_password=cfg.minio_password,
        oidc_provider_arn=cluster.oidc_provider_arn,
        oidc_issuer=cluster.oidc_issuer,
        service_accounts=(f"{ns}:aicash", f"{kfp_ns}:aicash", f"{kfp_ns}:ml-pipeline", f"{kfp_ns}:pipeline-runner"),
    ),
    opts=in_cluster,
)
online_store = (
    OnlineStore("online-store", OnlineStoreArgs(namespace=ns, password=cfg.redis_password, config=cfg.online_store),
                opts=in_cluster)
    if cfg.redis_password is not None else None
)
settings = PlatformSettings(
    "settings",
    PlatformSettingsArgs(
        namespaces=(ns, kfp_ns),
        database_url=database.url,
        database_logins=database.login_urls,  # each workload's own login (infra.database.LOGINS)
        namespace_database_urls={kfp_ns: database.login_urls["TRAINING_DATABASE_URL"]},  # KFP's steps: training
        bucket=store.bucket,
        public_url=f"https://{cfg.host}",
        smtp_password=cfg.smtp_password,
        s3_endpoint_url=store.endpoint_url,
        aws_region=cfg.aws_region,
        access_key_id=store.access_key_id,
        secret_access_key=store.secret_access_key,
        role_arn=store.role_arn,
        values=cfg.settings,
        smtp=cfg.smtp,
        kfp_host=api_url(kfp_ns),
        kfp_image=cfg.image(cfg.platform_image),
        redis_url=online_store.url if online_store is not None else None,
    ),
    opts=pulumi.ResourceOptions(providers=[cluster.provider], depends_on=[cluster, database, store]),
)
kfp = KubeflowPipelines(
    "kubeflow-pipelines",
    KubeflowPipelinesArgs(
        namespace=kfp_ns,
        version=cfg.kfp.version,
        wiring=KfpWiring(
            db_host=database.host,
            db_port=database.port,
            db_user=database.username,
            db_password=cfg.db_password,
            db_sslmode=database.sslmode,
            bucket=store.bucket,
            object_host=f"s3.{region}.amazonaws.com" if on_aws else f"minio.{ns}.svc.cluster.local",
            object_port=443 if on_aws else MINIO_PORT,
            object_secure=on_aws,
            region=region,
            access_key=store.access_key_id,
            secret_key=store.secret_access_key,
            role_arn=store.role_arn,
        ),
    ),
    opts=pulumi.ResourceOptions(providers=[cluster.provider], depends_on=[cluster, database, store]),
)
NetworkPolicies(
    "network-policies",
    NetworkPoliciesArgs(
        namespace=ns,
        kfp_namespace=kfp_ns,
        ingress_controller_namespace=cfg.ingress.controller_namespace,
        in_cluster_data=not on_aws,
        database_cidrs=tuple(cluster.database_cidrs),
        smtp_port=cfg.smtp.port,
        redis=online_store is not None,
        prometheus_namespace=cfg.observability.namespace if cfg.observability.install else None,
    ),
    opts=in_cluster,
)
migrations = Migrations(
    "migrations",
    MigrationsArgs(namespace=ns, image=cfg.image(cfg.platform_image), image_tag=cfg.image_tag),
    opts=pulumi.ResourceOptions(providers=[cluster.provider], depends_on=[settings, database, store]),
)
after_migrations = pulumi.ResourceOptions(providers=[cluster.provider], depends_on=[migrations])
features = FeatureServer(
    "feature-server", FeatureServerArgs(namespace=ns, image=cfg.image(cfg.platform_image)), opts=after_migrations
)
inference = InferenceService(
    "inference",
    InferenceServiceArgs(
        namespace=ns,
        image=cfg.image(cfg.bento_image),
        host=cfg.host,
        config=cfg.inference,
        ingress=cfg.ingress,
    ),
    opts=after_migrations,
)
Monitoring(
    "monitoring",
    MonitoringArgs(
        namespace=ns,
        image=cfg.image(cfg.platform_image),
        metrics_url=f"{inference.internal_url}/metrics",
        config=cfg.monitoring,
    ),
    opts=after_migrations,
)
Schedules(
    "schedules",
    SchedulesArgs(namespace=ns, image=cfg.image(cfg.platform_image), kfp_host=api_url(kfp_ns), config=cfg.schedules,
                  source_password=cfg.ingest_source_password),
    # the recurring run's Job talks to KFP and records it in training_runs: after both
    opts=pulumi.ResourceOptions(providers=[cluster.provider], depends_on=[migrations, kfp]),
)
if cfg.observability.install:
    Observability("observability", ObservabilityArgs(namespace=ns, image=cfg.image(cfg.platform_image),
                                                     config=cfg.observability), opts=in_cluster)

pulumi.export("namespace", ns)
pulumi.export("image_tag", cfg.image_tag)
pulumi.export("platform_image", cfg.image(cfg.platform_image))
pulumi.export("inference_url", inference.url)
pulumi.export("feature_server_url", features.url)
pulumi.export("kfp_api_url", kfp.api_url)
pulumi.export("kfp_ui", f"kubectl port-forward {kfp.ui_service} 8080:80")
pulumi.export("database_host", database.host)
pulumi.export("bucket", store.bucket)
if cluster.kubeconfig is not None:
    pulumi.export("kubeconfig", cluster.kubeconfig)
