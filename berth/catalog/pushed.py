"""When each tag was pushed, read from the registry's storage (the NFS share).

The registry keeps no push date in its API. Its filesystem driver writes
``<root>/docker/registry/v2/repositories/<name>/_manifests/tags/<tag>/current/link`` at
every push of a tag, so that file's modification time is the tag's push time. The read
happens in a forked child with a deadline (:func:`berth.nfs.child.run_in_child`): a hung
mount costs a page at most the deadline, never a stuck worker. One child per repository.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from berth.nfs.child import run_in_child
from berth.registry.references import check_name

BATCH = 500  # tags per message: keeps each JSON line small


def tags_directory(root: Path, name: str) -> Path:
    """Where the registry keeps the tags of repository ``name``."""
    check_name(name)  # a valid name has no '..' and no leading '/': it stays under the root
    return root / "docker" / "registry" / "v2" / "repositories" / name / "_manifests" / "tags"


def _read_link_times(directory: str) -> Iterator[dict]:
    """In the child: {tag: mtime} of each tag's current/link, in batches."""
    batch: dict[str, float] = {}
    with os.scandir(directory) as entries:
        for entry in entries:
            try:
                batch[entry.name] = os.stat(os.path.join(entry.path, "current", "link")).st_mtime
            except OSError:
                continue  # a tag being deleted, or no link yet: no date for it
            if len(batch) >= BATCH:
                yield {"times": batch}
                batch = {}
    yield {"times": batch}


def pushed_times(root: Path, name: str, deadline: float = 2.0) -> dict[str, datetime]:
    """tag -> push time for repository ``name``; empty when the storage cannot be read in time."""
    directory = tags_directory(root, name)
    result = run_in_child(_read_link_times, str(directory), deadline=deadline)
    if result.timed_out or result.failure:
        return {}
    times: dict[str, datetime] = {}
    for message in result.messages:
        for tag, seconds in (message.get("times") or {}).items():
            if isinstance(seconds, int | float) and seconds > 0:
                times[tag] = datetime.fromtimestamp(seconds, UTC)
    return times
