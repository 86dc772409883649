"""The policy pack `pulumi preview --policy-pack infra/policy_pack` runs.

Only this entry point builds a `PolicyPack` (which starts the analyzer server and blocks); the policies are
imported from `mlflow_platform.policies`, the same objects the test suite applies to the mocked program.
"""

import sys
from pathlib import Path

# The pack runs with this directory as its working directory; the policies live one level up, in infra/.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mlflow_platform.policies import ALL_POLICIES, DEFAULT_ENFORCEMENT
from pulumi_policy import PolicyPack

PolicyPack(
    name="rapids-mlflow-stack-policies",
    enforcement_level=DEFAULT_ENFORCEMENT,
    policies=ALL_POLICIES,
)
