"""GitHub REST access for vmkit-tui: the client, its typed results and its errors."""

from vmkit_tui.sources.github.client import GitHubClient
from vmkit_tui.sources.github.errors import (
    AuthError,
    BadResponse,
    GitHubError,
    NotFound,
    RateLimited,
    Rejected,
    ResponseLost,
    TooLarge,
    Unavailable,
)
from vmkit_tui.sources.github.policy import RequestStats
from vmkit_tui.sources.github.results import (
    CancelOutcome,
    Commit,
    CompareResult,
    DispatchResult,
    ImageCheck,
    ImageState,
    Job,
    RateLimit,
    Step,
    WorkflowRun,
)

__all__ = [
    "AuthError",
    "BadResponse",
    "CancelOutcome",
    "Commit",
    "CompareResult",
    "DispatchResult",
    "GitHubClient",
    "GitHubError",
    "ImageCheck",
    "ImageState",
    "Job",
    "NotFound",
    "RateLimit",
    "RateLimited",
    "Rejected",
    "RequestStats",
    "ResponseLost",
    "Step",
    "TooLarge",
    "Unavailable",
    "WorkflowRun",
]
