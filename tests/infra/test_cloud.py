"""The prod stack's AWS resources: private encrypted RDS with TLS forced, a locked-down bucket, IRSA, EKS."""

from __future__ import annotations

import json
from typing import Any

import pytest

from infra.database import database_url
from infra.network import subnet_cidrs
from infra.object_store import irsa_trust_policy
from infra.render import RecordingMocks, unwrap


@pytest.fixture
def aws(programs: dict[str, RecordingMocks]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for record in programs["prod"].records:
        if record.typ.startswith("aws:"):
            out.setdefault(record.typ, []).append(unwrap(record.inputs))
    return out


def test_rds_is_private_encrypted_backed_up_and_forces_tls(aws: dict[str, list[dict[str, Any]]]) -> None:
    [rds] = aws["aws:rds/instance:Instance"]
    assert rds["storageEncrypted"] is True and rds["publiclyAccessible"] is False
    assert rds["backupRetentionPeriod"] == 14 and rds["deletionProtection"] is True
    [params] = aws["aws:rds/parameterGroup:ParameterGroup"]
    assert {"name": "rds.force_ssl", "value": "1"} in params["parameters"]
    [firewall] = aws["aws:ec2/securityGroup:SecurityGroup"]
    [rule] = firewall["ingress"]
    assert rule["fromPort"] == rule["toPort"] == 5432 and "cidrBlocks" not in rule
    assert rule["securityGroups"] == ["sg-aicash-prod-cluster"]


def test_bucket_settings_name_the_bucket(aws: dict[str, list[dict[str, Any]]]) -> None:
    [bucket] = aws["aws:s3/bucket:Bucket"]
    for typ in ("bucketVersioning:BucketVersioning", "bucketPublicAccessBlock:BucketPublicAccessBlock",
                "bucketPolicy:BucketPolicy"):  # fmt: skip
        assert aws[f"aws:s3/{typ}"][0]["bucket"] == bucket["bucket"] == "aicash-prod-models"
    [policy] = aws["aws:s3/bucketPolicy:BucketPolicy"]
    assert json.loads(policy["policy"])["Statement"][0]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_irsa_trusts_only_the_platform_service_accounts(aws: dict[str, list[dict[str, Any]]]) -> None:
    roles = [json.loads(r["assumeRolePolicy"]) for r in aws["aws:iam/role:Role"]]
    federated = [r for r in roles if "Federated" in r["Statement"][0]["Principal"]]
    [trust] = federated
    condition = trust["Statement"][0]["Condition"]["StringEquals"]
    subjects = next(v for k, v in condition.items() if k.endswith(":sub"))
    assert "system:serviceaccount:aicash:aicash" in subjects
    assert "system:serviceaccount:kubeflow:pipeline-runner" in subjects
    assert all(s.startswith("system:serviceaccount:") for s in subjects)


def test_irsa_trust_policy_uses_the_issuer_host() -> None:
    doc = json.loads(irsa_trust_policy("arn:p", "https://oidc.example/id/X", ("ns:sa",)))
    assert doc["Statement"][0]["Condition"]["StringEquals"] == {
        "oidc.example/id/X:sub": ["system:serviceaccount:ns:sa"],
        "oidc.example/id/X:aud": "sts.amazonaws.com",
    }


def test_eks_encrypts_secrets_and_keeps_nodes_private(aws: dict[str, list[dict[str, Any]]]) -> None:
    [cluster] = aws["aws:eks/cluster:Cluster"]
    assert cluster["encryptionConfig"]["resources"] == ["secrets"]
    [nodes] = aws["aws:eks/nodeGroup:NodeGroup"]
    private = [s for s in aws["aws:ec2/subnet:Subnet"] if "kubernetes.io/role/internal-elb" in s["tags"]]
    assert len(nodes["subnetIds"]) == len(private) == 2
    [cni] = aws["aws:eks/addon:Addon"]
    assert json.loads(cni["configurationValues"]) == {"enableNetworkPolicy": "true"}


def test_subnets_and_database_url() -> None:
    assert subnet_cidrs("10.40.0.0/16", 4) == ["10.40.0.0/20", "10.40.16.0/20", "10.40.32.0/20", "10.40.48.0/20"]
    url = database_url("aicash", "p@ss/word", "db.internal", 5432, "aicash", "require")
    assert url == "postgresql://aicash:p%40ss%2Fword@db.internal:5432/aicash?sslmode=require"
