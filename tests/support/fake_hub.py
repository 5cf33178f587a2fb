"""A minimal Hugging Face Hub imitation on loopback, for tests that download repositories.

It speaks the part of the Hub protocol that ``huggingface_hub`` (checked against 2.4.0) uses in
``snapshot_download`` and ``hf_hub_download``:

- ``GET /api/models/{repo_id}/revision/{revision}`` (and ``GET /api/models/{repo_id}``): model info,
  whose ``sha`` is the commit the revision resolves to, plus ``siblings``.
- ``GET /api/models/{repo_id}/tree/{revision}[/{path}]?recursive=...``: the file listing, a JSON
  list of ``{"type": "file", "oid", "size", "path"[, "lfs"]}`` and ``{"type": "directory", ...}``
  in one page (no ``Link: rel="next"`` header).
- ``HEAD``/``GET /{repo_id}/resolve/{revision}/{filename}``: the file, with ``X-Repo-Commit``,
  ``ETag`` (git blob sha1; sha256 for LFS files, also as ``X-Linked-Etag``), ``Content-Length``
  (``X-Linked-Size`` for LFS files) and ``Accept-Ranges: bytes``. ``Range: bytes=N-`` (what the
  client sends when it resumes after a broken transfer) is answered with 206 and ``Content-Range``.
- Errors carry ``X-Error-Code`` (``RepoNotFound``, ``RevisionNotFound``, ``EntryNotFound``) and
  a JSON ``{"error": ...}`` body, which the client maps to ``RepositoryNotFoundError``,
  ``RevisionNotFoundError`` and ``RemoteEntryNotFoundError``.

Nothing Xet-related is ever sent (no ``X-Xet-Hash``/``X-Xet-Refresh-Route`` headers, no
``Link: rel="xet-auth"``, no ``xetHash`` in the tree), so the client uses plain HTTP downloads.

Only model repositories exist; every repository has one branch, ``main``, at a fixed fake commit
(``FakeHub.commit_sha(repo_id)``), which is also accepted as a revision.

Usage::

    with FakeHub({"org/model": {"config.json": b"{}", "model.safetensors": b"..."}}) as hub:
        path = snapshot_download("org/model", endpoint=hub.endpoint, cache_dir=tmp_path)
        assert ("GET", "/org/model/resolve/" + hub.commit_sha("org/model") + "/config.json") \
            in hub.requests

Code that calls ``snapshot_download`` without ``endpoint=`` reads the endpoint that
``huggingface_hub`` took from ``HF_ENDPOINT`` at import; in-process tests redirect it with
``hub.patch_default_endpoint(monkeypatch)``, subprocesses with ``env={"HF_ENDPOINT":
hub.endpoint}``.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

# Files stored with Git LFS on the real Hub (weights); they get ``lfs`` metadata in the tree and
# are identified by their sha256 (``X-Linked-Etag``) rather than their git blob sha1.
DEFAULT_LFS_PATTERNS = ("*.safetensors", "*.bin", "*.gguf", "*.pt", "*.pth", "*.onnx", "*.ckpt",
                        "*.h5", "*.msgpack", "*.model")

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
_CDN_PREFIX = "/_fake_cdn/"


def _git_blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class _File:
    def __init__(self, path: str, data: bytes, lfs: bool) -> None:
        self.path = path
        self.data = data
        self.sha256 = hashlib.sha256(data).hexdigest() if lfs else None
        if lfs:
            pointer = (f"version https://git-lfs.github.com/spec/v1\noid sha256:{self.sha256}\n"
                       f"size {len(data)}\n").encode()
            self.oid = _git_blob_sha1(pointer)
            self.pointer_size = len(pointer)
        else:
            self.oid = _git_blob_sha1(data)
            self.pointer_size = 0

    @property
    def etag(self) -> str:
        return self.sha256 or self.oid

    def tree_entry(self) -> dict[str, Any]:
        entry: dict[str, Any] = {"type": "file", "oid": self.oid, "size": len(self.data),
                                 "path": self.path}
        if self.sha256:
            entry["lfs"] = {"oid": self.sha256, "size": len(self.data),
                            "pointerSize": self.pointer_size}
        return entry


class FakeHub:
    """Serve ``repos`` (``{repo_id: {filename: bytes}}``) like the Hub, on 127.0.0.1.

    ``endpoint`` is the base URL, ``requests`` the ``(method, path)`` pairs served (path without
    the query string, still URL-quoted as sent). With ``lfs_redirect=True``, LFS files are
    answered, like on the real Hub, by a 302 to a "CDN" URL on another host (``localhost`` at the
    same port), so the client reads the metadata off the redirect and fetches the bytes there.
    """

    def __init__(self, repos: dict[str, dict[str, bytes]], *,
                 lfs_patterns: tuple[str, ...] = DEFAULT_LFS_PATTERNS,
                 lfs_redirect: bool = False, timeout: float = 10.0) -> None:
        self._repos = {
            repo_id: {name: _File(name, bytes(data),
                                  any(fnmatch.fnmatchcase(name, p) for p in lfs_patterns))
                      for name, data in files.items()}
            for repo_id, files in repos.items()
        }
        self.lfs_redirect = lfs_redirect
        self.timeout = timeout
        self.requests: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.endpoint = ""
        self.port = 0

    @staticmethod
    def commit_sha(repo_id: str) -> str:
        """The fixed fake commit that ``main`` of ``repo_id`` points to."""
        return hashlib.sha1(f"fake-hub-commit:{repo_id}".encode()).hexdigest()

    def file_gets(self) -> list[str]:
        """Paths of the ``GET`` requests that fetched file bodies (``/resolve/`` or CDN)."""
        with self._lock:
            return [p for m, p in self.requests
                    if m == "GET" and ("/resolve/" in p or p.startswith(_CDN_PREFIX))]

    def patch_default_endpoint(self, monkeypatch: Any) -> None:
        """Point ``huggingface_hub``'s default endpoint (``HF_ENDPOINT``, read at import) at this
        hub for the rest of the test, with pytest's ``monkeypatch`` (undone at teardown)."""
        from huggingface_hub import constants

        monkeypatch.setenv("HF_ENDPOINT", self.endpoint)
        monkeypatch.setattr(constants, "ENDPOINT", self.endpoint)
        monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE",
                            self.endpoint + "/{repo_id}/resolve/{revision}/{filename}")

    # -- lifecycle ------------------------------------------------------------------------------

    def __enter__(self) -> FakeHub:
        hub = self

        class Handler(_Handler):
            pass

        Handler.hub = hub
        Handler.timeout = self.timeout  # idle sockets cannot hold a handler thread forever
        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = False  # so that server_close() joins every handler thread
        server.block_on_close = True
        self._server = server
        self.port = server.server_address[1]
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="fake-hub", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is None:
            return
        server.shutdown()  # waits for serve_forever to return
        server.server_close()  # closes the socket and joins the handler threads
        if thread is not None:
            thread.join(self.timeout)

    # -- lookups --------------------------------------------------------------------------------

    def _record(self, method: str, path: str) -> None:
        with self._lock:
            self.requests.append((method, path))

    def _split_repo(self, rest: str) -> tuple[str | None, str]:
        """``org/model/tail`` -> (``org/model``, ``tail``), longest known repo id first."""
        for repo_id in sorted(self._repos, key=len, reverse=True):
            if rest == repo_id:
                return repo_id, ""
            if rest.startswith(repo_id + "/"):
                return repo_id, rest[len(repo_id) + 1:]
        return None, rest

    def _cdn_file(self, sha256: str) -> _File | None:
        for files in self._repos.values():
            for f in files.values():
                if f.sha256 == sha256:
                    return f
        return None


class _Handler(BaseHTTPRequestHandler):
    hub: FakeHub
    protocol_version = "HTTP/1.0"  # one request per connection: no idle keep-alive threads
    server_version = "FakeHub/1.0"

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output quiet

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    # -- routing --------------------------------------------------------------------------------

    def _dispatch(self, method: str) -> None:
        url = urlsplit(self.path)
        path, query = url.path, parse_qs(url.query)
        self.hub._record(method, path)
        try:
            if path.startswith("/api/models/"):
                self._api(method, path[len("/api/models/"):], query)
            elif path.startswith(_CDN_PREFIX):
                f = self.hub._cdn_file(path[len(_CDN_PREFIX):])
                if f is None:
                    self._error(404, "EntryNotFound", "Entry not found", method=method)
                else:
                    self._send_file(method, f, {})
            elif "/resolve/" in path:
                self._resolve(method, path)
            elif path.startswith("/api/"):
                self._error(404, "RepoNotFound", "Repository not found", method=method)
            else:
                self._json(method, 404, {"error": "Not Found"})
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _revision(self, method: str, repo_id: str, raw: str) -> str | None:
        revision = unquote(raw)
        sha = self.hub.commit_sha(repo_id)
        if revision in ("main", sha):
            return sha
        self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}", method=method)
        return None

    def _api(self, method: str, rest: str, query: dict[str, list[str]]) -> None:
        repo_id, tail = self.hub._split_repo(rest)
        if repo_id is None:
            self._error(404, "RepoNotFound", "Repository not found", method=method)
            return
        files = self.hub._repos[repo_id]
        if tail == "" or tail.startswith("revision/"):
            sha = self._revision(method, repo_id, tail[len("revision/"):] or "main")
            if sha is None:
                return
            blobs = _flag(query, "blobs")
            siblings = []
            for f in files.values():
                sib: dict[str, Any] = {"rfilename": f.path}
                if blobs:
                    sib.update(size=len(f.data), blobId=f.oid)
                    if f.sha256:
                        sib["lfs"] = {"sha256": f.sha256, "size": len(f.data),
                                      "pointerSize": f.pointer_size}
                siblings.append(sib)
            self._json(method, 200, {
                "_id": sha[:24], "id": repo_id, "modelId": repo_id,
                "author": repo_id.split("/")[0] if "/" in repo_id else None,
                "sha": sha, "lastModified": "2024-01-01T00:00:00.000Z",
                "createdAt": "2024-01-01T00:00:00.000Z", "private": False, "disabled": False,
                "gated": False, "downloads": 0, "likes": 0, "tags": [], "siblings": siblings,
            })
        elif tail.startswith("tree/"):
            raw_rev, _, raw_dir = tail[len("tree/"):].partition("/")
            if self._revision(method, repo_id, raw_rev) is None:
                return
            folder = unquote(raw_dir).strip("/")
            listing = _tree(files, folder, _flag(query, "recursive"))
            if folder and not listing:
                self._error(404, "EntryNotFound", f"{folder} does not exist", method=method)
                return
            self._json(method, 200, listing)
        else:
            self._json(method, 404, {"error": "Not Found"})

    def _resolve(self, method: str, path: str) -> None:
        raw_repo, _, rest = path.lstrip("/").partition("/resolve/")
        repo_id = unquote(raw_repo)
        if repo_id not in self.hub._repos:
            self._error(404, "RepoNotFound", "Repository not found", method=method)
            return
        raw_rev, _, raw_name = rest.partition("/")
        sha = self._revision(method, repo_id, raw_rev)
        if sha is None:
            return
        f = self.hub._repos[repo_id].get(unquote(raw_name))
        if f is None:
            self._error(404, "EntryNotFound", "Entry not found", method=method,
                        extra={"X-Repo-Commit": sha})
            return
        headers = {"X-Repo-Commit": sha}
        if f.sha256:
            headers.update({"X-Linked-Etag": f'"{f.sha256}"', "X-Linked-Size": str(len(f.data))})
        if f.sha256 and self.hub.lfs_redirect:
            # Another origin than the endpoint, as the real CDN: the client stops at this 302.
            headers.update({"ETag": f'"{f.oid}"', "Content-Length": "0",
                            "Location": f"http://localhost:{self.hub.port}{_CDN_PREFIX}{f.sha256}"})
            self._send(method, 302, headers, b"")
            return
        self._send_file(method, f, headers)

    # -- responses ------------------------------------------------------------------------------

    def _send_file(self, method: str, f: _File, headers: dict[str, str]) -> None:
        data, size = f.data, len(f.data)
        headers = {**headers, "ETag": f'"{f.etag}"', "Accept-Ranges": "bytes",
                   "Content-Type": "application/octet-stream"}
        wanted = self.headers.get("Range")
        match = _RANGE.match(wanted.strip()) if wanted and method == "GET" else None
        if wanted and method == "GET" and match is None:
            self._send(method, 416, {**headers, "Content-Range": f"bytes */{size}"}, b"")
            return
        if match is not None:
            first, last = match.groups()
            if first:
                start, end = int(first), min(int(last), size - 1) if last else size - 1
            elif last:
                start, end = max(size - int(last), 0), size - 1
            else:
                start, end = size, -1  # "bytes=-" is not a range
            if start >= size or start > end:
                self._send(method, 416, {**headers, "Content-Range": f"bytes */{size}"}, b"")
                return
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
            self._send(method, 206, headers, data[start:end + 1])
            return
        self._send(method, 200, headers, data)

    def _error(self, status: int, code: str, message: str, *, method: str = "GET",
               extra: dict[str, str] | None = None) -> None:
        headers = {"X-Error-Code": code, "X-Error-Message": message, **(extra or {})}
        self._json(method, status, {"error": message}, headers)

    def _json(self, method: str, status: int, payload: Any,
              headers: dict[str, str] | None = None) -> None:
        body = json.dumps(payload).encode()
        self._send(method, status, {**(headers or {}), "Content-Type": "application/json"}, body)

    def _send(self, method: str, status: int, headers: dict[str, str], body: bytes) -> None:
        self.send_response(status)
        headers = {"Content-Length": str(len(body)), **headers}
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        if method != "HEAD" and body:
            self.wfile.write(body)


def _flag(query: dict[str, list[str]], name: str) -> bool:
    return query.get(name, ["false"])[-1].lower() in ("1", "true", "yes")


def _tree(files: dict[str, _File], folder: str, recursive: bool) -> list[dict[str, Any]]:
    """The ``/tree`` listing of ``folder`` ("" = root): folders first, then files."""
    prefix = folder + "/" if folder else ""
    dirs: set[str] = set()
    entries = []
    for name in sorted(files):
        if not name.startswith(prefix):
            continue
        parts = name[len(prefix):].split("/")
        for depth in range(1, len(parts) if recursive else min(len(parts), 2)):
            dirs.add(prefix + "/".join(parts[:depth]))
        if recursive or len(parts) == 1:
            entries.append(files[name].tree_entry())
    listing = [{"type": "directory", "oid": hashlib.sha1(d.encode()).hexdigest(), "size": 0,
                "path": d} for d in sorted(dirs)]
    return listing + entries
