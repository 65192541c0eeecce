"""Offline model provisioning: chunk assembly, SHA-256 checks, idempotent pulls, corrupt-copy rebuilds."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import pytest

from dorag.core.errors import ModelError
from dorag.models import registry


@pytest.fixture()
def fake_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A registered model whose GGUF is split over two fake installed packages; conversion is counted."""
    site = tmp_path / "site"
    chunks = [b"GGUF" + bytes(range(256)) * 10, b"tail" * 100]
    for i, data in enumerate(chunks):
        pkg = site / f"fakechunk{i}"
        (pkg / "data").mkdir(parents=True)
        (pkg / "__init__.py").write_text("")
        (pkg / "data" / "part.bin").write_bytes(data)
    monkeypatch.syspath_prepend(str(site))
    whole = b"".join(chunks)
    spec = registry.ModelSpec(
        name="fake-model", hf_id="org/fake", description="test",
        source=registry.GGUFSource(chunks=(("fakechunk0", "data/part.bin"), ("fakechunk1", "data/part.bin")),
                                   sha256=hashlib.sha256(whole).hexdigest(), size_bytes=len(whole),
                                   pip="pip install fakechunk0 fakechunk1"))
    monkeypatch.setitem(registry.MODELS, "fake-model", spec)
    calls = []

    def convert(gguf: Path, out: Path) -> None:
        calls.append(gguf)
        out.mkdir(parents=True)
        assert gguf.read_bytes() == whole
        (out / "config.json").write_text("{}")
        (out / "model.safetensors").write_bytes(b"w" * 1000)

    monkeypatch.setattr(registry, "_convert_gguf", convert)
    return spec, calls, tmp_path / "cache"


def test_pull_builds_once_then_is_a_no_op(fake_model):
    spec, calls, cache = fake_model
    path = registry.pull("fake-model", cache)
    assert (path / registry.MANIFEST).is_file() and registry.is_pulled("fake-model", cache)
    assert registry.pull("fake-model", cache) == path
    assert len(calls) == 1
    assert not list(path.parent.glob("*.tmp*"))


def test_truncated_checkpoint_is_detected_and_rebuilt(fake_model):
    spec, calls, cache = fake_model
    path = registry.pull("fake-model", cache)
    (path / "model.safetensors").write_bytes(b"w" * 10)
    assert "model.safetensors has 10 bytes" in registry.verify_checkpoint(path)
    assert not registry.is_pulled("fake-model", cache)
    registry.resolve("fake-model", cache)  # loading a corrupt copy rebuilds it first
    assert len(calls) == 2 and (path / "model.safetensors").stat().st_size == 1000


def test_same_size_corruption_is_caught_by_the_full_check(fake_model):
    spec, calls, cache = fake_model
    path = registry.pull("fake-model", cache)
    (path / "model.safetensors").write_bytes(b"x" * 1000)
    assert registry.verify_checkpoint(path, full=True) == "model.safetensors fails its SHA-256 check"
    registry.pull("fake-model", cache)
    assert len(calls) == 2 and (path / "model.safetensors").read_bytes() == b"w" * 1000


def test_interrupted_pull_without_manifest_is_not_used(fake_model):
    spec, calls, cache = fake_model
    path = registry.model_dir("fake-model", cache)
    path.mkdir(parents=True)
    (path / "config.json").write_text("{}")  # a half-written directory from a killed process
    assert registry.verify_checkpoint(path) == "no manifest (incomplete pull)"
    registry.pull("fake-model", cache)
    assert len(calls) == 1 and registry.is_pulled("fake-model", cache)


def test_corrupt_chunk_fails_with_reinstall_hint(fake_model, tmp_path):
    spec, calls, cache = fake_model
    chunk = Path(sys.modules.get("fakechunk1").__file__).parent if "fakechunk1" in sys.modules else tmp_path / "site" / "fakechunk1"
    (chunk / "data" / "part.bin").write_bytes(b"tail" * 99 + b"XXXX")
    with pytest.raises(ModelError, match="fails its SHA-256 check; reinstall"):
        registry.pull("fake-model", cache)
    assert not calls and not list((cache / "gguf").glob("*"))


def test_missing_chunk_package_names_the_pip_command(fake_model, monkeypatch):
    spec, calls, cache = fake_model
    broken = registry.ModelSpec(**{**spec.__dict__, "source": registry.GGUFSource(
        chunks=(("no_such_pkg_xyz", "a.bin"),), sha256="0", size_bytes=1, pip="pip install no-such")})
    monkeypatch.setitem(registry.MODELS, "fake-model", broken)
    with pytest.raises(ModelError, match="not installed: no_such_pkg_xyz; install them with: pip install no-such"):
        registry.pull("fake-model", cache)


def test_resolve_rules(tmp_path):
    with pytest.raises(ModelError, match="unknown model 'nosuch'"):
        registry.resolve("nosuch")
    assert registry.resolve("deepseek-ai/deepseek-coder-1.3b-instruct") == ("deepseek-ai/deepseek-coder-1.3b-instruct", None)
    (tmp_path / "ckpt").mkdir()
    with pytest.raises(ModelError, match="without config.json"):
        registry.resolve(str(tmp_path / "ckpt"))
    with pytest.raises(ModelError, match="does not exist"):
        registry.resolve(str(tmp_path / "missing"))
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    assert registry.resolve(str(gguf)) == (str(tmp_path), "m.gguf")


def test_an_uncached_hub_model_offline_fails_before_any_work(monkeypatch, tmp_path):
    from dorag.models import loading

    monkeypatch.setattr(loading, "hub_reachable", lambda timeout_s=3.0: False)
    monkeypatch.setattr(loading, "_cached_on_hub", lambda repo_id: False)
    with pytest.raises(ModelError, match=r"^could not load model 'org/coder' from the Hugging Face Hub, which is "
                                         r"unreachable \(offline\?\), nor the local HF cache: .*; use a registered model"):
        loading.check_available("org/coder")
    monkeypatch.setattr(loading, "_cached_on_hub", lambda repo_id: True)
    loading.check_available("org/coder")  # cached: loads offline later
    monkeypatch.setattr(loading, "_cached_on_hub", lambda repo_id: False)
    monkeypatch.setattr(loading, "hub_reachable", lambda timeout_s=3.0: True)
    loading.check_available("org/coder")  # online: downloads later
    loading.check_available("qwen2.5-coder-0.5b-instruct", cache_dir=str(tmp_path))  # registered: pulled when needed
    with pytest.raises(ModelError, match="does not exist"):
        loading.check_available(str(tmp_path / "nope"))


@pytest.fixture()
def fresh_probe(monkeypatch):
    from huggingface_hub.utils import close_session

    from dorag.models import loading

    monkeypatch.setattr(loading, "_REACHABLE", {})
    close_session()  # the Hub session reads the proxy variables when it is made
    yield loading
    close_session()


def _listener(answer: bytes):
    """A TCP server that records the first request line of each connection and answers `answer`."""
    import socket
    import threading

    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    seen: list[str] = []

    def serve():
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            with conn:
                seen.append(conn.recv(4096).decode(errors="replace").split("\r\n")[0])
                conn.sendall(answer)

    threading.Thread(target=serve, daemon=True).start()
    return srv, seen


def test_the_hub_probe_honours_hf_hub_offline_without_any_request(monkeypatch, fresh_probe):
    import huggingface_hub.utils
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.utils, "get_session", lambda: pytest.fail("a request was made offline"))
    assert fresh_probe.hub_reachable() is False


def test_the_hub_probe_asks_hf_endpoint_through_the_proxy_variables(monkeypatch, fresh_probe):
    from huggingface_hub import constants

    for var in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):  # only this test's proxy settings count
        monkeypatch.delenv(var, raising=False)
        monkeypatch.delenv(var.upper(), raising=False)
    mirror, asked = _listener(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
    monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{mirror.getsockname()[1]}")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    assert fresh_probe.hub_reachable() is True and asked == ["HEAD / HTTP/1.1"]  # any HTTP answer: it is there
    mirror.close()

    proxy, tunnelled = _listener(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")
    monkeypatch.setattr(constants, "ENDPOINT", "https://huggingface.co")
    monkeypatch.setattr(fresh_probe, "_REACHABLE", {})
    monkeypatch.delenv("NO_PROXY")
    monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{proxy.getsockname()[1]}")
    from huggingface_hub.utils import close_session

    close_session()
    assert fresh_probe.hub_reachable() is False  # the proxy refused the tunnel
    assert tunnelled == ["CONNECT huggingface.co:443 HTTP/1.1"]
    proxy.close()
