"""The local stack: PostgreSQL, an S3-compatible store and the MLflow server as processes on one machine.

It mirrors what the Pulumi program in ``infra/`` deploys to a cluster, so that ``make demo`` and the tests run
the whole flow against real services.
"""

from local_stack.errors import StackError
from local_stack.settings import StackSettings
from local_stack.stack import LocalStack

__all__ = ["LocalStack", "StackError", "StackSettings"]
