"""Git: revert a commit on a config repository's branch and push it (pygit2).

The rollback of an auto-synced target (DESIGN §3): Argo CD or Flux would sync any other change
straight back, so the revert goes where they read from. A fresh bare clone of the branch in a
temporary folder each time (a revert is rare; a cached mirror would need its own locking), the
revert computed against the branch tip (``revert_commit``: a conflict is an error, never a guess),
one commit by "gatekeeper" whose message names the release and the reason and carries git's own
``This reverts commit <sha>.`` line, pushed without force (someone pushing meanwhile: retried).

Idempotent (DESIGN §8): a branch whose history since the commit already holds its revert (that
line) changes nothing; neither does a branch on which the commit is not (nothing to revert).

``on_pushed(sha, restored)`` is called with the revert's sha once it is on the remote (a push
refused records nothing); ``restored`` is the offending commit's parent when the revert's tree is
exactly that commit's tree (no later commit on the branch), else None. gatekeeper's own revert is
never reverted again (a revert applied without approval is a person's problem to resolve).
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pygit2

from gatekeeper.actuators import ActuatorError, RefusedError

AUTHOR = ("gatekeeper", "gatekeeper@localhost")
_USERINFO = re.compile(r"(://)[^/@\s]+@")


@dataclass(frozen=True, slots=True)
class Reverted:
    changed: bool
    message: str
    commit: str | None = None  # the revert's sha (the one found, or the one pushed)


OnPushed = Callable[[str, str | None], None]  # (the revert's sha, the commit whose tree it restores)


def reverts_line(sha: str) -> str:
    return f"This reverts commit {sha}."


class GitReverter:
    def __init__(self, *, token: str | None = None, ssh_key_file: Path | None = None) -> None:
        self.token = token
        self.ssh_key_file = ssh_key_file

    def revert(
        self, repo: str, branch: str, sha: str, title: str, reason: str, on_pushed: OnPushed | None = None
    ) -> Reverted:
        """Revert ``sha`` on ``branch`` of ``repo`` with a commit titled ``title`` and push it."""
        shown = _USERINFO.sub(r"\1***@", repo)
        with tempfile.TemporaryDirectory(prefix="gatekeeper-revert-") as folder:
            try:
                return self._revert(repo, shown, branch, (sha, title, reason), Path(folder), on_pushed)
            except pygit2.GitError as exc:
                raise ActuatorError(f"revert of {sha[:12]} on {shown}@{branch} failed: {str(exc)[:200]}") from exc

    def _revert(
        self, repo: str, shown: str, branch: str, what: tuple[str, str, str], folder: Path, on_pushed: OnPushed | None
    ) -> Reverted:
        sha, title, reason = what
        callbacks = _Credentials(self.token, self.ssh_key_file)
        clone = pygit2.clone_repository(repo, str(folder), bare=True, checkout_branch=branch, callbacks=callbacks)
        tip = clone.revparse_single(f"refs/heads/{branch}").peel(pygit2.Commit)
        try:
            offending = clone.revparse_single(sha).peel(pygit2.Commit)
        except (KeyError, ValueError, pygit2.InvalidSpecError) as exc:
            raise RefusedError(f"{shown} has no commit {sha[:12]} to revert") from exc
        found = _revert_on(clone, tip, offending)
        if found is not None:
            return Reverted(False, f"{shown}@{branch}: {sha[:12]} already reverted by {found[:12]}", found)
        if offending.id != tip.id and not clone.descendant_of(tip.id, offending.id):
            return Reverted(False, f"{shown}@{branch}: {sha[:12]} is not on the branch, nothing to revert")
        if len(offending.parents) != 1:
            raise RefusedError(f"{sha[:12]} on {shown}@{branch} is a merge or a root commit: revert it by hand")
        if offending.author.name == AUTHOR[0] and "This reverts commit" in offending.message:
            raise RefusedError(f"{sha[:12]} on {shown}@{branch} is gatekeeper's own revert: it is not reverted again")
        index = clone.revert_commit(offending, tip)
        if index.conflicts is not None:
            raise RefusedError(f"reverting {sha[:12]} on {shown}@{branch} conflicts with later commits")
        tree = index.write_tree(clone)
        signature = pygit2.Signature(*AUTHOR)
        message = f"{title}\n\n{reason}\n\n{reverts_line(str(offending.id))}\n"
        commit = clone.create_commit(f"refs/heads/{branch}", signature, signature, message, tree, [tip.id])
        clone.remotes["origin"].push([f"refs/heads/{branch}:refs/heads/{branch}"], callbacks=callbacks)
        if on_pushed is not None:
            parent = offending.parents[0]
            on_pushed(str(commit), str(parent.id) if tree == parent.tree_id else None)
        return Reverted(True, f"{shown}@{branch}: {sha[:12]} reverted by {str(commit)[:12]}", str(commit))


def _revert_on(clone: pygit2.Repository, tip: pygit2.Commit, offending: pygit2.Commit) -> str | None:
    """The commit since ``offending`` on the branch whose message says it reverts it."""
    line = reverts_line(str(offending.id))
    for commit in clone.walk(tip.id, pygit2.enums.SortMode.TOPOLOGICAL):
        if commit.id == offending.id:
            return None
        if line in commit.message:
            return str(commit.id)
    return None


class _Credentials(pygit2.RemoteCallbacks):
    def __init__(self, token: str | None, ssh_key_file: Path | None) -> None:
        super().__init__()
        self._token, self._ssh_key_file = token, ssh_key_file

    def credentials(self, url: str, username_from_url: str | None, allowed_types: int) -> Any:
        if allowed_types & pygit2.enums.CredentialType.SSH_KEY and self._ssh_key_file is not None:
            return pygit2.Keypair(username_from_url or "git", None, str(self._ssh_key_file), "")
        if allowed_types & pygit2.enums.CredentialType.USERPASS_PLAINTEXT and self._token is not None:
            return pygit2.UserPass(username_from_url or "x-access-token", self._token)
        raise pygit2.GitError(f"{url} asks for credentials and none are configured (GIT_TOKEN, GIT_SSH_KEY_FILE)")

    def push_update_reference(self, refname: str, message: str | None) -> None:
        if message:  # the server refused this ref (not a fast-forward: someone pushed meanwhile)
            raise pygit2.GitError(f"push of {refname} refused: {message}")
