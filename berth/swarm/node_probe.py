"""What one Swarm node sees: run inside a task on every node, prints one JSON line.

This file is sent whole as ``python3 -I -S -c SOURCE`` to the tasks of a Swarm
``global-job`` (:mod:`berth.swarm.nodecheck`), so it imports nothing but the standard
library and needs no Berth installed: any image with ``python3`` runs it. It only reports
facts; Berth judges them (:mod:`berth.swarm.noderules`).

Input (environment): ``BERTH_PROBE_NODE`` (the node's hostname, a Swarm template),
``BERTH_PROBE_PATH`` (the registry storage path, bind-mounted from the node),
``BERTH_PROBE_REPOS`` (JSON list of repository names the registry's catalog has),
``BERTH_PROBE_CA_DIR`` (the node's ``certs.d/HOST:PORT``, bind-mounted), and optionally
``BERTH_PROBE_WRITE_CA`` (a PEM bundle to write there as ``ca.crt`` first).
"""

import base64
import hashlib
import json
import os
import re

PEM = re.compile(r"-----BEGIN CERTIFICATE-----(.+?)-----END CERTIFICATE-----", re.S)


def _unescape(text):
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), text)


def storage(path, expected):
    """The mount that holds ``path`` (as the node bound it) and which expected repositories it has."""
    found = {"path": path, "exists": os.path.isdir(path)}
    with open("/proc/self/mountinfo") as mountinfo:
        for line in mountinfo:
            left, _, right = line.partition(" - ")
            fields, tail = left.split(), right.split()
            if len(fields) >= 6 and len(tail) >= 3 and _unescape(fields[4]) == path:
                found.update(root=_unescape(fields[3]), fstype=tail[0], source=_unescape(tail[1]),
                             options=tail[2] + "," + fields[5])  # fmt: skip
    base = os.path.join(path, "docker", "registry", "v2", "repositories")
    missing = [name for name in expected if not os.path.isdir(os.path.join(base, name, "_manifests"))]
    found.update(expected=len(expected), missing=missing[:20], missing_count=len(missing))
    return found


def fingerprints(pem):
    """SHA-256 fingerprints (``AA:BB:...``) of the certificates in a PEM bundle."""
    result = []
    for body in PEM.findall(pem):
        digest = hashlib.sha256(base64.b64decode("".join(body.split()))).hexdigest().upper()
        result.append(":".join(digest[i : i + 2] for i in range(0, len(digest), 2)))
    return result


def ca(directory, bundle):
    """What ``directory/ca.crt`` holds, after writing ``bundle`` there when given."""
    path = os.path.join(directory, "ca.crt")
    found = {"path": path, "written": False}
    try:
        if bundle:
            os.makedirs(directory, exist_ok=True)
            with open(path + ".new", "w") as new:
                new.write(bundle)
            os.chmod(path + ".new", 0o644)
            os.replace(path + ".new", path)
            found["written"] = True
        with open(path) as current:
            found.update(exists=True, fingerprints=fingerprints(current.read()))
    except FileNotFoundError:
        found.update(exists=False, fingerprints=[])
    except OSError as exc:
        found.update(exists=os.path.exists(path), fingerprints=[], error=str(exc))
    return found


def main():
    """Print one JSON line about this node."""
    env = os.environ
    report = {"node": env.get("BERTH_PROBE_NODE", ""), "berth_probe": 1}
    try:
        report["storage"] = storage(env["BERTH_PROBE_PATH"], json.loads(env.get("BERTH_PROBE_REPOS") or "[]"))
    except (OSError, ValueError, KeyError) as exc:
        report["storage"] = {"error": str(exc)}
    report["ca"] = ca(env.get("BERTH_PROBE_CA_DIR", "/nonexistent"), env.get("BERTH_PROBE_WRITE_CA"))
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    main()
