"""`ObjectStore`: the one bucket for models and pipeline artifacts.

`local` runs MinIO in the platform namespace and creates a versioned bucket with `mc`; `aws` creates a
private, KMS-encrypted, versioned S3 bucket that refuses plain HTTP, and an IRSA role the platform's
service accounts assume (no static AWS keys in the cluster).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from infra import kube
from infra.component import Component
from infra.config import Cloud, Resources, StorageConfig

MINIO_PORT = 9000
MINIO_UID = 1000
NAME = "minio"


@dataclass(frozen=True)
class ObjectStoreArgs:
    """The bucket; MinIO credentials on `local`, IRSA trust on `aws`."""

    cloud: Cloud
    namespace: str
    config: StorageConfig = field(default_factory=StorageConfig)
    minio_password: pulumi.Output[str] | None = None
    oidc_provider_arn: pulumi.Input[str] | None = None
    oidc_issuer: pulumi.Input[str] | None = None
    service_accounts: tuple[str, ...] = ()  # "namespace:name" allowed to assume the access role


def irsa_trust_policy(provider_arn: str, issuer: str, service_accounts: tuple[str, ...]) -> str:
    """Trust for web identities of exactly these Kubernetes service accounts."""
    host = issuer.removeprefix("https://")
    subjects = [f"system:serviceaccount:{sa}" for sa in service_accounts]
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    "Principal": {"Federated": provider_arn},
                    "Action": "sts:AssumeRoleWithWebIdentity",
                    "Condition": {"StringEquals": {f"{host}:sub": subjects, f"{host}:aud": "sts.amazonaws.com"}},
                }
            ],
        }
    )


def bucket_access_policy(bucket_arn: str) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Action": ["s3:ListBucket", "s3:GetBucketLocation"], "Resource": bucket_arn},
                {
                    "Effect": "Allow",
                    "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:GetObjectVersion"],
                    "Resource": f"{bucket_arn}/*",
                },
            ],
        }
    )


def deny_insecure_transport(bucket_arn: str) -> str:
    return json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "DenyInsecureTransport",
                    "Effect": "Deny",
                    "Principal": "*",
                    "Action": "s3:*",
                    "Resource": [bucket_arn, f"{bucket_arn}/*"],
                    "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                }
            ],
        }
    )


class ObjectStore(Component):
    """Outputs the bucket name, the endpoint (None on AWS) and, on AWS, the access role."""

    bucket: str
    endpoint_url: str | None = None
    access_key_id: str | None = None
    secret_access_key: pulumi.Output[str] | None = None
    role_arn: pulumi.Output[str] | None = None

    def __init__(self, name: str, args: ObjectStoreArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("aicash:storage:ObjectStore", name, opts)
        self.bucket = args.config.bucket
        if args.cloud == "aws":
            self._s3(name, args)
        else:
            self._minio(name, args)
        self.register_outputs({"bucket": self.bucket, "endpoint_url": self.endpoint_url})

    def _minio(self, name: str, args: ObjectStoreArgs) -> None:
        if args.minio_password is None:
            raise ValueError("the local object store needs the aicash:minioPassword secret")
        ns, cfg = args.namespace, args.config
        self.endpoint_url = kube.service_url(NAME, ns, MINIO_PORT)
        self.access_key_id = cfg.minio_user
        self.secret_access_key = args.minio_password
        alias_url = args.minio_password.apply(
            lambda password: f"http://{cfg.minio_user}:{password}@{NAME}.{ns}.svc.cluster.local:{MINIO_PORT}"
        )
        credentials = k8s.core.v1.Secret(
            f"{name}-credentials",
            metadata=kube.meta("minio-credentials", ns, "object-store"),
            string_data={
                "MINIO_ROOT_USER": cfg.minio_user,
                "MINIO_ROOT_PASSWORD": args.minio_password,
                "MC_HOST_local": alias_url,
            },
            opts=self.child_opts(),
        )
        child = self.child_opts(depends_on=[credentials])
        k8s.core.v1.Service(
            f"{name}-service",
            metadata=kube.meta(NAME, ns, "object-store"),
            spec={
                "selector": kube.selector(NAME),
                "ports": [{"name": "s3", "port": MINIO_PORT, "targetPort": MINIO_PORT}],
            },
            opts=child,
        )
        server = kube.container(
            NAME,
            cfg.minio_image,
            Resources("100m", "256Mi", "1", "1Gi"),
            args=["server", "/data", "--console-address", ":9001"],
            ports=[{"name": "s3", "containerPort": MINIO_PORT}],
            env_from=[{"secretRef": {"name": "minio-credentials"}}],
            liveness=kube.http_probe("/minio/health/live", MINIO_PORT),
            readiness=kube.http_probe("/minio/health/ready", MINIO_PORT),
            mounts=[{"name": "data", "mountPath": "/data"}],
        )
        k8s.apps.v1.StatefulSet(
            f"{name}-statefulset",
            metadata=kube.meta(NAME, ns, "object-store"),
            spec=kube.stateful_spec(NAME, "object-store", server, uid=MINIO_UID, storage_gb=cfg.storage_gb),
            opts=child,
        )
        self._bucket_job(name, ns, cfg, child)

    def _bucket_job(self, name: str, ns: str, cfg: StorageConfig, opts: pulumi.ResourceOptions) -> None:
        """Create the bucket, then turn versioning on; `mc` reads the server from MC_HOST_local."""
        alias = {"secretKeyRef": {"name": "minio-credentials", "key": "MC_HOST_local"}}

        def mc(step: str, *command: str) -> kube.Obj:
            return kube.container(
                step,
                cfg.mc_image,
                Resources("50m", "64Mi", "250m", "128Mi"),
                args=["--config-dir", "/scratch/.mc", *command, f"local/{cfg.bucket}"],
                env=[{"name": "MC_HOST_local", "valueFrom": alias}],
                mounts=[{"name": "scratch", "mountPath": "/scratch"}],
            )

        pod = kube.pod_spec(
            [mc("enable-versioning", "version", "enable")],
            run_as_user=MINIO_UID,
            service_account=None,
            volumes=[{"name": "scratch", "emptyDir": {}}],
            restart_policy="OnFailure",
        )
        pod["initContainers"] = [mc("make-bucket", "mb", "--ignore-existing")]
        job_name = f"minio-bucket-{kube.slug(cfg.bucket)}"
        k8s.batch.v1.Job(
            f"{name}-bucket",
            metadata=kube.meta(job_name, ns, "object-store", client=True),
            spec={
                "backoffLimit": 6,
                "template": {"metadata": {"labels": kube.labels(job_name, "object-store", client=True)}, "spec": pod},
            },
            opts=opts,
        )

    def _s3(self, name: str, args: ObjectStoreArgs) -> None:
        opts = self.child_opts()
        bucket = aws.s3.Bucket(f"{name}-bucket", bucket=args.config.bucket, opts=opts)
        aws.s3.BucketOwnershipControls(
            f"{name}-ownership", bucket=bucket.bucket, rule={"object_ownership": "BucketOwnerEnforced"}, opts=opts
        )
        aws.s3.BucketPublicAccessBlock(
            f"{name}-public-access",
            bucket=bucket.bucket,
            block_public_acls=True,
            block_public_policy=True,
            ignore_public_acls=True,
            restrict_public_buckets=True,
            opts=opts,
        )
        aws.s3.BucketServerSideEncryptionConfiguration(
            f"{name}-encryption",
            bucket=bucket.bucket,
            rules=[
                {"apply_server_side_encryption_by_default": {"sse_algorithm": "aws:kms"}, "bucket_key_enabled": True}
            ],
            opts=opts,
        )
        aws.s3.BucketVersioning(
            f"{name}-versioning", bucket=bucket.bucket, versioning_configuration={"status": "Enabled"}, opts=opts
        )
        aws.s3.BucketPolicy(
            f"{name}-tls-only", bucket=bucket.bucket, policy=bucket.arn.apply(deny_insecure_transport), opts=opts
        )
        if args.oidc_provider_arn is None or args.oidc_issuer is None:
            raise ValueError("the AWS object store needs the cluster's OIDC provider for IRSA")
        trust = pulumi.Output.all(args.oidc_provider_arn, args.oidc_issuer).apply(
            lambda parts: irsa_trust_policy(parts[0], parts[1], args.service_accounts)
        )
        role = aws.iam.Role(f"{name}-access", assume_role_policy=trust, opts=opts)
        aws.iam.RolePolicy(f"{name}-access", role=role.id, policy=bucket.arn.apply(bucket_access_policy), opts=opts)
        self.role_arn = role.arn
