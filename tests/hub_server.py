"""A small HTTP server that speaks the part of the Hugging Face Hub API the real clients use to create
repos, upload (regular and LFS), list and download files: a test fixture, bound to 127.0.0.1.

The code under test is the real huggingface_hub / transformers / datasets client code and ours; this only
stores what they send. Each repo has a linear history of commits on `main`; a commit id resolves too.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

USER = "me"
TOKEN = "hf_lotus_test_token"  # what the tests put in HF_TOKEN; anything else is refused


@dataclass
class Repo:
    kind: str  # model, dataset, space
    repo_id: str
    private: bool = False
    commits: list[dict] = field(default_factory=list)  # {"oid", "files": {path: sha256}, "summary"}

    def commit_for(self, revision: str) -> dict | None:
        if revision in ("main", "HEAD") or revision is None:
            return self.commits[-1]
        return next((c for c in self.commits if c["oid"] == revision), None)


class HubState:
    def __init__(self) -> None:
        self.repos: dict[tuple[str, str], Repo] = {}
        self.blobs: dict[str, bytes] = {}  # sha256 -> content
        self.lock = threading.Lock()

    def create(self, kind: str, repo_id: str, private: bool) -> Repo:
        repo = Repo(kind, repo_id, private)
        repo.commits.append({"oid": _oid(f"{kind}/{repo_id}/init"), "files": {}, "summary": "initial commit"})
        self.repos[(kind, repo_id)] = repo
        return repo

    def add_blob(self, content: bytes) -> str:
        sha = hashlib.sha256(content).hexdigest()
        self.blobs[sha] = content
        return sha


def _oid(seed: str) -> str:
    return hashlib.sha1(seed.encode()).hexdigest()


_API_ROUTE = re.compile(
    r"/api/(models|datasets|spaces)/(.+?)(?:/(revision|tree|paths-info|preupload|commit)(?:/([^/]+)(/.*)?)?)?/?"
)
_KINDS = {"models": "model", "datasets": "dataset", "spaces": "space"}
_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}


class Handler(BaseHTTPRequestHandler):
    server_version = "lotus-hf-test-hub/1"
    state: HubState  # set on the subclass made per server

    def log_message(self, *args) -> None:  # quiet
        pass

    # ------------------------------------------------------------------------------------- helpers
    def _send(self, status: int, body=None, headers: dict | None = None, head: bool = False) -> None:
        data = b"" if body is None else body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        if not isinstance(body, bytes):
            self.send_header("Content-Type", "application/json")
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if not head:
            self.wfile.write(data)

    def _error(self, status: int, code: str, message: str, head: bool = False) -> None:
        self._send(status, {"error": message}, {"X-Error-Code": code, "X-Error-Message": message}, head)

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _authorised(self) -> bool:
        return self.headers.get("Authorization", "") == f"Bearer {TOKEN}"

    def _repo(self, kind: str, repo_id: str, head: bool = False) -> Repo | None:
        repo = self.state.repos.get((kind, repo_id))
        if repo is None or (repo.private and not self._authorised()):
            self._error(404, "RepoNotFound", f"Repository Not Found for url: {self.path}.", head)
            return None
        return repo

    def _commit(self, repo: Repo, revision: str, head: bool = False) -> dict | None:
        commit = repo.commit_for(unquote(revision))
        if commit is None:
            self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}", head)
        return commit

    def _info(self, repo: Repo, commit: dict) -> dict:
        return {
            "id": repo.repo_id,
            "_id": _oid(repo.repo_id)[:24],
            "sha": commit["oid"],
            "private": repo.private,
            "disabled": False,
            "gated": False,
            "downloads": 0,
            "likes": 0,
            "tags": [],
            "lastModified": "2026-11-28T00:00:00.000Z",
            "createdAt": "2026-11-28T00:00:00.000Z",
            "siblings": [{"rfilename": path} for path in sorted(commit["files"])],
        }

    def _entries(self, commit: dict, prefix: str, recursive: bool) -> list[dict]:
        prefix = prefix.strip("/")
        entries, folders = [], set()
        for path in sorted(commit["files"]):
            if prefix and not path.startswith(prefix + "/"):
                continue
            rest = path[len(prefix) + 1 :] if prefix else path
            if "/" in rest and not recursive:
                folders.add((prefix + "/" if prefix else "") + rest.split("/")[0])
                continue
            if recursive:
                parts = rest.split("/")[:-1]
                for i in range(1, len(parts) + 1):
                    folders.add((prefix + "/" if prefix else "") + "/".join(parts[:i]))
            entries.append(self._file_entry(path, commit["files"][path]))
        return [{"type": "directory", "oid": _oid(f), "path": f} for f in sorted(folders)] + entries

    def _file_entry(self, path: str, sha: str) -> dict:
        size = len(self.state.blobs[sha])
        entry = {"type": "file", "oid": _oid("blob" + sha), "size": size, "path": path}
        if _is_lfs(path, size):
            entry["lfs"] = {"oid": sha, "size": size, "pointerSize": 134}
        return entry

    # -------------------------------------------------------------------------------------- routes
    def do_GET(self) -> None:  # noqa: N802
        self._route("GET")

    def do_HEAD(self) -> None:  # noqa: N802
        self._route("HEAD")

    def do_POST(self) -> None:  # noqa: N802
        self._route("POST")

    def do_PUT(self) -> None:  # noqa: N802
        url = urlparse(self.path)
        match = re.fullmatch(r"/lfs-upload/([0-9a-f]{64})", url.path)
        if not match:
            return self._error(404, "NotFound", f"no route {url.path}")
        content = self._body()
        with self.state.lock:
            sha = self.state.add_blob(content)
        if sha != match.group(1):
            return self._error(400, "BadRequest", "LFS content does not match its oid")
        self._send(200, {})

    def _route(self, method: str) -> None:
        url = urlparse(self.path)
        path, query = unquote(url.path), parse_qs(url.query)
        head = method == "HEAD"
        with self.state.lock:
            if path == "/api/whoami-v2":
                if not self._authorised():
                    return self._error(401, "Unauthorized", "Invalid credentials in Authorization header")
                return self._send(
                    200,
                    {
                        "type": "user",
                        "name": USER,
                        "orgs": [],
                        "auth": {"type": "access_token", "accessToken": {"displayName": "test", "role": "write"}},
                    },
                )
            if path == "/api/repos/create" and method == "POST":
                return self._create()
            if path == "/api/validate-yaml" and method == "POST":
                return self._send(200, {"errors": [], "warnings": []})
            match = _API_ROUTE.fullmatch(path)
            if match:
                return self._api(
                    method,
                    _KINDS[match.group(1)],
                    match.group(2),
                    match.group(3),
                    match.group(4) or "main",
                    (match.group(5) or "").lstrip("/"),
                    query,
                )
            match = re.fullmatch(r"/(.+)\.git/info/lfs/objects/batch", path)
            if match and method == "POST":
                return self._lfs_batch()
            match = re.fullmatch(r"/(?:(datasets|spaces)/)?(.+?)/resolve/([^/]+)/(.+)", path)
            if match and method in ("GET", "HEAD"):
                kind = _KINDS[match.group(1)] if match.group(1) else "model"
                return self._resolve(kind, match.group(2), match.group(3), match.group(4), head)
        self._error(404, "NotFound", f"no route {method} {path}", head)

    def _create(self) -> None:
        if not self._authorised():
            return self._error(401, "Unauthorized", "Invalid credentials in Authorization header")
        body = json.loads(self._body() or b"{}")
        name = body["name"] if not body.get("organization") else f"{body['organization']}/{body['name']}"
        kind = body.get("type") or "model"
        url = f"http://{self.headers['Host']}/{_PREFIX[kind]}{name}"
        if (kind, name) in self.state.repos:  # the client reads the url of the existing repo from the 409
            message = "You already created this model repo"
            return self._send(409, {"error": message, "url": url}, {"X-Error-Code": "Conflict"})
        private = body.get("visibility", "private" if body.get("private") else "public") != "public"
        self.state.create(kind, name, private)
        return self._send(200, {"url": url, "name": name})

    def _api(self, method, kind, repo_id, action, revision, rest, query) -> None:
        head = method == "HEAD"
        repo = self._repo(kind, repo_id, head)
        if repo is None:
            return
        if action in (None, "revision"):
            commit = self._commit(repo, revision if action else "main", head)
            return commit and self._send(200, self._info(repo, commit), head=head)
        commit = self._commit(repo, revision, head)
        if commit is None:
            return
        if action == "tree":
            recursive = query.get("recursive", ["false"])[0].lower() == "true"
            prefix = rest.strip("/")
            if prefix and not any(p.startswith(prefix + "/") for p in commit["files"]):
                return self._error(404, "EntryNotFound", f"{prefix} does not exist on {revision}", head)
            return self._send(200, self._entries(commit, prefix, recursive), head=head)
        if method != "POST":
            return self._error(405, "MethodNotAllowed", f"{method} {action}")
        body = self._body()
        if action == "paths-info":
            paths = _paths_from(body, self.headers.get("Content-Type", ""))
            entries = []
            for wanted in paths:
                wanted = wanted.strip("/")
                if wanted in commit["files"]:
                    entries.append(self._file_entry(wanted, commit["files"][wanted]))
                elif any(p.startswith(wanted + "/") for p in commit["files"]):
                    entries.append({"type": "directory", "oid": _oid(wanted), "path": wanted})
            return self._send(200, entries)
        if not self._authorised():
            return self._error(401, "Unauthorized", "Invalid credentials in Authorization header")
        if action == "preupload":
            files = json.loads(body)["files"]
            modes = [
                {
                    "path": f["path"],
                    "uploadMode": "lfs" if _is_lfs(f["path"], f["size"]) else "regular",
                    "shouldIgnore": False,
                    "oid": None,
                }
                for f in files
            ]
            return self._send(200, {"files": modes, "commitOid": commit["oid"]})
        if action == "commit":
            return self._commit_files(repo, commit, body)
        return self._error(404, "NotFound", f"no route {action}")

    def _commit_files(self, repo: Repo, parent: dict, body: bytes) -> None:
        if parent is not repo.commits[-1]:
            return self._error(412, "PreconditionFailed", "commits only go on top of main here")
        files = dict(parent["files"])
        summary = ""
        for line in body.decode().splitlines():
            if not line.strip():
                continue
            item = json.loads(line)
            key, value = item["key"], item["value"]
            if key == "header":
                summary = value.get("summary", "")
            elif key == "file":
                content = (
                    base64.b64decode(value["content"])
                    if value.get("encoding") == "base64"
                    else value["content"].encode()
                )
                files[value["path"]] = self.state.add_blob(content)
            elif key == "lfsFile":
                if value["oid"] not in self.state.blobs:
                    return self._error(422, "LfsObjectMissing", f"LFS object {value['oid']} was not uploaded")
                files[value["path"]] = value["oid"]
            elif key == "deletedFile":
                files.pop(value["path"], None)
            elif key == "deletedFolder":
                files = {p: s for p, s in files.items() if not p.startswith(value["path"].rstrip("/") + "/")}
            else:
                return self._error(400, "BadRequest", f"unknown commit operation {key}")
        oid = _oid(f"{repo.repo_id}/{len(repo.commits)}/{json.dumps(files, sort_keys=True)}")
        repo.commits.append({"oid": oid, "files": files, "summary": summary})
        url = f"http://{self.headers['Host']}/{_PREFIX[repo.kind]}{repo.repo_id}"
        self._send(200, {"commitUrl": f"{url}/commit/{oid}", "commitOid": oid, "pullRequestUrl": None})

    def _lfs_batch(self) -> None:
        body = json.loads(self._body())
        host = f"http://{self.headers['Host']}"
        objects = []
        for obj in body.get("objects", []):
            entry = {"oid": obj["oid"], "size": obj["size"]}
            if obj["oid"] not in self.state.blobs:
                entry["actions"] = {"upload": {"href": f"{host}/lfs-upload/{obj['oid']}", "header": {}}}
            objects.append(entry)
        self._send(
            200,
            {"transfer": "basic", "objects": objects, "hash_algo": "sha256"},
            {"Content-Type": "application/vnd.git-lfs+json"},
        )

    def _resolve(self, kind, repo_id, revision, file_path, head) -> None:
        repo = self._repo(kind, repo_id, head)
        if repo is None:
            return
        commit = self._commit(repo, revision, head)
        if commit is None:
            return
        sha = commit["files"].get(file_path)
        if sha is None:
            return self._error(404, "EntryNotFound", f"Entry not found: {file_path}", head)
        content = self.state.blobs[sha]
        headers = {
            "X-Repo-Commit": commit["oid"],
            "ETag": f'"{_oid("blob" + sha)}"',
            "Content-Type": "application/octet-stream",
        }
        if _is_lfs(file_path, len(content)):
            headers.update({"X-Linked-Etag": f'"{sha}"', "X-Linked-Size": str(len(content)), "ETag": f'"{sha}"'})
        self._send(200, content, headers, head)


def _is_lfs(path: str, size: int) -> bool:
    """As the Hub's default .gitattributes: binaries and big files are LFS."""
    return size >= 10_000_000 or path.endswith((".safetensors", ".bin", ".parquet", ".arrow", ".png", ".npy"))


def _paths_from(body: bytes, content_type: str) -> list[str]:
    if "json" in content_type:
        return json.loads(body).get("paths", [])
    return parse_qs(body.decode()).get("paths", [])


class HubServer:
    """`with HubServer() as hub: os.environ["HF_ENDPOINT"] = hub.url`: a Hub on 127.0.0.1, a free port."""

    def __init__(self) -> None:
        self.state = HubState()
        handler = type("BoundHandler", (Handler,), {"state": self.state})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> HubServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def files(self, repo_id: str, kind: str = "model") -> dict[str, bytes]:
        """The files of a repo's `main`, as stored (for assertions)."""
        repo = self.state.repos[(kind, repo_id)]
        return {path: self.state.blobs[sha] for path, sha in repo.commits[-1]["files"].items()}

    def repo_ids(self, kind: str = "model") -> list[str]:
        return sorted(repo_id for k, repo_id in self.state.repos if k == kind)


# ------------------------------------------------------------------------ clients of the server, in subprocesses
TESTS = Path(__file__).resolve().parent


def client_env(server: HubServer, hf_home: Path) -> dict[str, str]:
    """The environment of a subprocess whose huggingface_hub / transformers / datasets talk to `server` (they read
    HF_ENDPOINT when they are imported, hence subprocesses)."""
    return {
        **os.environ,
        "HF_ENDPOINT": server.url,
        "HF_TOKEN": TOKEN,
        "HF_HUB_OFFLINE": "0",
        "HF_HUB_DISABLE_XET": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
        "HF_HOME": str(hf_home),
        "PYTHONPATH": str(TESTS),
    }


def python(env: dict[str, str], code: str) -> str:
    """Run `code` in a Python subprocess with `env`; its stdout, after checking that it succeeded."""
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    """`lotus-hf unlearn ARGS` in a subprocess with `env`."""
    return subprocess.run(
        [sys.executable, "-m", "lotus_hf.cli", "unlearn", *args], env=env, capture_output=True, text=True, timeout=300
    )


def download(env: dict[str, str], repo_id: str, folder: Path) -> Path:
    python(
        env,
        f"from huggingface_hub import snapshot_download\nsnapshot_download({repo_id!r}, local_dir={str(folder)!r})",
    )
    return folder
