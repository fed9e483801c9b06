"""actuators/git.py against a real bare remote: the pushed revert is inspected (parent, tree,
author, message), and a second revert finds the first on the branch and changes nothing."""

from __future__ import annotations

from pathlib import Path

import pygit2
import pytest

from gatekeeper.actuators import RefusedError
from gatekeeper.actuators.git import GitReverter

ADA = pygit2.Signature("Ada Release", "ada@acme.io", 1_764_000_000, 60)


def commit(repo: pygit2.Repository, files: dict[str, str], message: str) -> pygit2.Oid:
    builder = repo.TreeBuilder()
    for name, text in files.items():
        builder.insert(name, repo.create_blob(text.encode()), pygit2.enums.FileMode.BLOB)
    parents = [] if repo.head_is_unborn else [repo.head.target]
    return repo.create_commit("refs/heads/main", ADA, ADA, message, builder.write(), parents)


def bare_remote(tmp_path: Path, *commits: tuple[dict[str, str], str]) -> tuple[Path, list[pygit2.Oid]]:
    """``tmp_path/odoo-config.git``, a bare remote whose main holds ``commits`` (files, message), in order."""
    bare = tmp_path / "odoo-config.git"
    pygit2.init_repository(str(bare), bare=True, initial_head="main")
    work = pygit2.init_repository(str(tmp_path / "work"), bare=True, initial_head="main")
    made = [commit(work, files, message) for files, message in commits]
    work.remotes.create("origin", str(bare))
    work.remotes["origin"].push(["refs/heads/main:refs/heads/main"])
    return bare, made


@pytest.fixture
def remote(tmp_path: Path) -> tuple[Path, pygit2.Repository, list[pygit2.Oid]]:
    """A bare remote with main: baseline, the offending change, then an unrelated later commit."""
    bare, made = bare_remote(
        tmp_path,
        ({"replicas.yaml": "replicas: 2\n", "notes.md": "a\n"}, "baseline"),
        ({"replicas.yaml": "replicas: 9\n", "notes.md": "a\n"}, "scale to 9 during the freeze"),
        ({"replicas.yaml": "replicas: 9\n", "notes.md": "b\n"}, "notes"),
    )
    return bare, pygit2.Repository(str(bare)), made


def test_the_revert_pushed_has_the_tip_as_parent_the_change_undone_and_gatekeeper_as_author(
    remote: tuple[Path, pygit2.Repository, list[pygit2.Oid]],
) -> None:
    bare, repo, (base, bad, later) = remote
    title = "gatekeeper: roll back release 7 (argocd:odoo-prod-eu)"
    reason = "revision was applied while its release was deferred, not approved (applied_without_approval)"
    done = GitReverter().revert(str(bare), "main", str(bad), title, reason)
    assert done.changed
    tip = repo.revparse_single("refs/heads/main").peel(pygit2.Commit)
    assert str(tip.id) == done.commit
    assert [p.id for p in tip.parents] == [later]
    assert (tip.author.name, tip.committer.name) == ("gatekeeper", "gatekeeper")
    assert tip.message.splitlines()[0] == title
    assert reason in tip.message and f"This reverts commit {bad}." in tip.message
    assert repo[tip.tree["replicas.yaml"].id].data == b"replicas: 2\n"  # the change undone
    assert repo[tip.tree["notes.md"].id].data == b"b\n"  # the later commit kept
    assert tip.tree["replicas.yaml"].id == repo[base].peel(pygit2.Commit).tree["replicas.yaml"].id


def test_a_second_revert_finds_the_first_on_the_branch_and_pushes_nothing(
    remote: tuple[Path, pygit2.Repository, list[pygit2.Oid]],
) -> None:
    bare, repo, (_, bad, _) = remote
    first = GitReverter().revert(str(bare), "main", str(bad), "gatekeeper: roll back release 7", "freeze")
    tip = repo.revparse_single("refs/heads/main").id
    again = GitReverter().revert(str(bare), "main", str(bad), "gatekeeper: roll back release 7", "freeze")
    assert (first.changed, again.changed) == (True, False)
    assert again.commit == first.commit
    assert repo.revparse_single("refs/heads/main").id == tip


def test_a_commit_the_remote_does_not_have_is_refused(
    remote: tuple[Path, pygit2.Repository, list[pygit2.Oid]],
) -> None:
    bare, _, _ = remote
    with pytest.raises(RefusedError, match="no commit"):
        GitReverter().revert(str(bare), "main", "f" * 40, "t", "r")


def test_the_revert_is_announced_once_pushed_and_one_under_a_later_commit_restores_no_earlier_state(
    remote: tuple[Path, pygit2.Repository, list[pygit2.Oid]],
) -> None:
    """Reverting a commit that a later one follows keeps the later change: the tree it leaves is
    not the offending commit's parent's (only a revert restoring an approved state is gatekeeper's
    own, pre-approved). Reverting the tip restores exactly (test_rollback_revert.py)."""
    bare, repo, (_, bad, _) = remote
    seen: list[tuple[str, str | None, bool]] = []

    def on_pushed(sha: str, restored: str | None) -> None:
        pushed = sha in {str(c.id) for c in repo.walk(repo.head.target)}
        seen.append((sha, restored, pushed))

    done = GitReverter().revert(str(bare), "main", str(bad), "gatekeeper: roll back release 7", "r", on_pushed)
    assert seen == [(done.commit, None, True)]  # on the remote when announced; restores no earlier tree
    again = GitReverter().revert(str(bare), "main", str(bad), "gatekeeper: roll back release 7", "r", on_pushed)
    assert not again.changed and len(seen) == 1  # nothing new: nothing announced


def test_gatekeepers_own_revert_is_not_reverted_again(
    remote: tuple[Path, pygit2.Repository, list[pygit2.Oid]],
) -> None:
    bare, _, (_, bad, _) = remote
    first = GitReverter().revert(str(bare), "main", str(bad), "gatekeeper: roll back release 7", "r")
    assert first.changed and first.commit is not None
    with pytest.raises(RefusedError, match="gatekeeper's own revert"):
        GitReverter().revert(str(bare), "main", first.commit, "gatekeeper: roll back release 8", "r")
