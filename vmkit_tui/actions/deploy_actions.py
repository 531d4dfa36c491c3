"""The deploy actions: roll back, deploy any SHA, cancel. Checked, recorded first, then sent.

Rules every action follows:

- One action at a time per environment: a second one while the first is being sent is refused
  at once (a double key press never starts two), and so is a rollback while one we started is
  still in flight there (the history says so, which covers other processes too).
- Recorded before sent: what the action is about to do is in the history and published before
  any request leaves, so a crash never loses an action that was sent.
- The rollback half (`rollback.Rollbacks`: preflight, rollback, deploy_sha) and the cancel half
  (`cancel.Cancels`: cancel_preflight, cancel) share their state and lookups (`base`).

No Textual; history I/O through `AsyncHistory`; no token in any message (`secret.redact`).
"""

from __future__ import annotations

from vmkit_tui.actions.cancel import Cancels
from vmkit_tui.actions.rollback import Rollbacks

__all__ = ["DeployActions"]


class DeployActions(Rollbacks, Cancels):
    """Rollback, deploy-a-SHA and cancel for the configured environments; see the module
    docstring. `github` None: no token (the `github` strategy and cancel are refused, checks
    that need GitHub say "cannot check"). `after_dispatch(repo, environment)` is called once a
    dispatch went out (the service wakes that environment's tracker). `vm_watchers`: the VM log
    watchers to share (the service's); without them the actions make their own. Call
    `aclose()` when done: it stops the VM log streams of kamal-ssh deploys the actions own."""
