"""Security: names cannot escape the home, models run no code, nothing is unpickled or HTML.

* Collection (and judgment set) names are validated before any path is built from them.
* A model folder is loaded with ``trust_remote_code`` off and from safetensors only: a pickled
  ``pytorch_model.bin`` and custom code named in its configs are never run, and a changed
  weight file changes the fingerprint, so a collection refuses it.
* Streamlit's upload limit and XSRF protection are set in ``.streamlit/config.toml``.
* Nothing is unpickled: no pickle-capable loader is imported or called in the package or the
  app, every ``np.load`` passes ``allow_pickle=False``, and a forged object array is refused.
* Corpus text is never rendered as HTML: no ``unsafe_allow_html``, ``st.html`` or HTML
  component in the app (the browser check is in ``tests/test_load.py``).
"""

from __future__ import annotations

import ast
import io
import json
import pickle
import shutil
import tomllib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from search_core.collection import (
    build_collection,
    collection_folder,
    delete_collection,
    load_probes,
    open_collection,
    read_manifest,
    validate_name,
)
from search_core.embedding import (
    Embedder,
    bundled_model_path,
    fingerprint_files,
    model_fingerprint,
)
from search_core.errors import FingerprintMismatchError, IntegrityError, ModelError
from search_core.ingest import Limits
from search_core.judgments import open_judgments
from tests.fake_embedder import FakeEmbedder
from tests.test_corruption import resign
from tests.test_crash_safety import generation_report
from tests.test_embedding import model_copy

REPO = Path(__file__).resolve().parents[1]
PACKAGE_FILES = sorted((REPO / "search_core").glob("*.py"))
APP_FILES = sorted([REPO / "app.py", *(REPO / "pages").glob("*.py")])

# --- names -----------------------------------------------------------------------------------

BAD_NAMES = [
    "",
    " ",
    ".",
    "..",
    "../x",
    "x/../../y",
    "a/b",
    "a\\b",
    "/etc",
    "C:",
    ".hidden",
    "-flag",
    "x..y",
    "name\n",
    "name\x00",
    "sp ace",
    "é",
    "a" * 65,
]


@pytest.mark.parametrize("name", BAD_NAMES, ids=repr)
def test_every_entry_point_refuses_a_bad_name_before_touching_the_disk(
    tmp_path: Path, name: str
) -> None:
    home = tmp_path / "home"
    embedder = FakeEmbedder()
    calls = [
        lambda: validate_name(name),
        lambda: collection_folder(name, home),
        lambda: build_collection(name, generation_report(1), home=home, embedder=embedder),
        lambda: open_collection(name, home, embedder=embedder),
        lambda: read_manifest(name, home),
        lambda: delete_collection(name, home),
    ]
    for call in calls:
        with pytest.raises(ValueError, match="invalid collection name"):
            call()
    assert not home.exists()


@pytest.mark.parametrize("name", BAD_NAMES, ids=repr)
def test_a_judgment_set_name_is_validated_too(tmp_path: Path, name: str) -> None:
    build_collection("shop", generation_report(1), home=tmp_path, embedder=FakeEmbedder())
    with pytest.raises(ValueError, match="invalid judgment set name"):
        open_judgments("shop", name, tmp_path)
    assert sorted(p.name for p in (tmp_path / "shop").iterdir() if not p.name.startswith("v-")) == [
        "CURRENT"
    ]


@given(st.text(max_size=70))
def test_an_accepted_name_is_always_one_plain_folder_inside_the_home(name: str) -> None:
    home = Path("/collections/home")
    try:
        validate_name(name)
    except ValueError:
        return
    folder = collection_folder(name, home)
    assert folder.parent == home and folder.name == name
    assert ".." not in name and not name.startswith(".") and name.isascii() and name.isprintable()


def test_a_pointer_cannot_lead_out_of_the_collection(tmp_path: Path) -> None:
    build_collection("safe", generation_report(1), home=tmp_path, embedder=FakeEmbedder())
    for version in ("../../etc", "v-1/../../..", "/etc", "v-1\n"):
        (tmp_path / "safe" / "CURRENT").write_text(json.dumps({"version": version}))
        with pytest.raises(IntegrityError, match="damaged pointer"):
            read_manifest("safe", tmp_path)


# --- the model folder ------------------------------------------------------------------------


class Canary:
    """Unpickling this creates ``path``: proof that a pickle was loaded."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (str(self.path), "w"))


EVIL_CODE = """
from pathlib import Path
Path(__file__).with_name("code-ran").touch()
from transformers import BertConfig, BertModel, BertTokenizerFast
class EvilConfig(BertConfig):
    pass
class EvilModel(BertModel):
    pass
class EvilTokenizer(BertTokenizerFast):
    pass
"""


def booby_trapped_model(tmp_path: Path, *, keep_safetensors: bool = True) -> Path:
    """A copy of the bundled model with a pickled ``.bin`` and custom code named in its configs.

    Loading the pickle creates ``pickle-ran``; importing the code creates ``code-ran``.
    """
    target = model_copy(tmp_path, keep_safetensors=keep_safetensors)
    with (target / "pytorch_model.bin").open("wb") as handle:
        pickle.dump(Canary(target / "pickle-ran"), handle)
    (target / "evil.py").write_text(EVIL_CODE)
    for name, auto_map in (
        ("config.json", {"AutoConfig": "evil.EvilConfig", "AutoModel": "evil.EvilModel"}),
        ("tokenizer_config.json", {"AutoTokenizer": ["evil.EvilTokenizer", None]}),
    ):
        config = json.loads((target / name).read_text())
        config["auto_map"] = auto_map
        (target / name).write_text(json.dumps(config))
    return target


def test_a_model_folder_never_runs_its_pickle_or_its_code(tmp_path: Path, embedder) -> None:
    folder = booby_trapped_model(tmp_path)
    trapped = Embedder(folder)
    assert trapped.tokenizer is not None
    vectors = trapped.embed(["Refunds are issued within five business days."])
    reference = embedder.embed(["Refunds are issued within five business days."])
    assert np.allclose(vectors, reference, atol=1e-6)  # the safetensors weights were used
    assert not (folder / "pickle-ran").exists()
    assert not (folder / "code-ran").exists()


def test_a_model_folder_without_safetensors_is_refused(tmp_path: Path) -> None:
    folder = booby_trapped_model(tmp_path, keep_safetensors=False)
    with pytest.raises(ModelError, match="only safetensors models are loaded"):
        Embedder(folder)
    assert not (folder / "pickle-ran").exists()
    assert not (folder / "code-ran").exists()


def test_changed_weights_are_refused_by_a_collection(tmp_path: Path, embedder) -> None:
    home = tmp_path / "home"
    build_collection("pinned", generation_report(1), home=home, embedder=embedder)
    source = bundled_model_path()
    copy = tmp_path / "changed"
    shutil.copytree(source, copy)
    weights = next(copy.glob("*.safetensors"))
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0x01  # one bit of one weight
    weights.write_bytes(bytes(data))
    with pytest.raises(FingerprintMismatchError):
        open_collection("pinned", home, embedder=Embedder(copy))


def test_every_file_that_shapes_the_vectors_is_in_the_fingerprint() -> None:
    folder = bundled_model_path()
    covered = {p.relative_to(folder).as_posix() for p in fingerprint_files(folder)}
    present = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
    assert present - covered <= {"README.md", ".gitattributes", "data_config.json"}
    assert {"model.safetensors", "tokenizer.json", "1_Pooling/config.json"} <= covered
    assert len(model_fingerprint(folder)) == 64


def calls_in(files: list[Path]) -> list[tuple[str, ast.Call]]:
    found = []
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call):
                found.append((f"{path.name}:{node.lineno}", node))
    return found


def call_name(call: ast.Call) -> str:
    func = call.func
    parts = []
    while isinstance(func, ast.Attribute):
        parts.append(func.attr)
        func = func.value
    if isinstance(func, ast.Name):
        parts.append(func.id)
    return ".".join(reversed(parts))


def keyword(call: ast.Call, name: str) -> object:
    for item in call.keywords:
        if item.arg == name and isinstance(item.value, ast.Constant):
            return item.value.value
        if item.arg == "model_kwargs" and isinstance(item.value, ast.Dict):
            for key, value in zip(item.value.keys, item.value.values, strict=True):
                if isinstance(key, ast.Constant) and key.value == name:
                    return value.value if isinstance(value, ast.Constant) else None
    return None


def test_every_model_load_in_the_package_turns_remote_code_off_and_wants_safetensors() -> None:
    loads = [
        (where, call)
        for where, call in calls_in(PACKAGE_FILES)
        if call_name(call).endswith("from_pretrained") or call_name(call) == "SentenceTransformer"
    ]
    assert loads, "no model load found: this test looks in the wrong place"
    for where, call in loads:
        assert keyword(call, "trust_remote_code") is False, f"{where}: trust_remote_code"
        if "Tokenizer" not in call_name(call):
            assert keyword(call, "use_safetensors") is True, f"{where}: use_safetensors"


# --- Streamlit settings ----------------------------------------------------------------------


def test_streamlit_limits_uploads_and_checks_xsrf() -> None:
    config = tomllib.loads((REPO / ".streamlit" / "config.toml").read_text(encoding="utf-8"))
    server = config["server"]
    assert server["enableXsrfProtection"] is True
    upload_mb = server["maxUploadSize"]
    assert isinstance(upload_mb, int) and 1 <= upload_mb <= Limits().max_file_size // 2**20
    # Tracebacks would show file paths and code to whoever uses the app.
    assert config.get("client", {}).get("showErrorDetails") in (False, "none")


# --- no pickle -------------------------------------------------------------------------------

PICKLE_MODULES = {"pickle", "_pickle", "cPickle", "dill", "cloudpickle", "joblib", "shelve"}
PICKLE_CALLS = {"torch.load", "pd.read_pickle", "pandas.read_pickle", "marshal.loads"}


@pytest.mark.parametrize("files", [PACKAGE_FILES, APP_FILES], ids=["search_core", "app"])
def test_no_pickle_loader_is_imported_or_called(files: list[Path]) -> None:
    assert files
    for path in files:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                names = {(node.module or "").split(".")[0]}
            else:
                continue
            assert not names & PICKLE_MODULES, f"{path.name}:{node.lineno} imports {names}"
    for where, call in calls_in(files):
        name = call_name(call)
        assert name not in PICKLE_CALLS, f"{where}: {name}"
        assert keyword(call, "allow_pickle") is not True, f"{where}: allow_pickle=True"
        if name in {"np.load", "numpy.load"}:
            assert keyword(call, "allow_pickle") is False, f"{where}: np.load without allow_pickle"


def test_every_npy_file_of_a_collection_loads_without_pickle(tmp_path: Path) -> None:
    built = build_collection("plain", generation_report(2), home=tmp_path, embedder=FakeEmbedder())
    arrays = sorted(built.folder.glob("*.npy"))
    assert {p.name for p in arrays} >= {"embeddings.npy", "probes.npy", "bm25_data.npy"}
    for path in arrays:
        assert np.load(path, allow_pickle=False).dtype != object


@pytest.mark.parametrize("victim", ["embeddings.npy", "bm25_data.npy", "probes.npy"])
def test_a_forged_object_array_is_refused_without_being_unpickled(
    tmp_path: Path, victim: str
) -> None:
    embedder = FakeEmbedder()
    home = tmp_path / "home"
    build_collection("forged", generation_report(2), home=home, embedder=embedder)
    canary = tmp_path / "pickle-ran"
    buffer = io.BytesIO()
    np.save(buffer, np.array([Canary(canary)], dtype=object), allow_pickle=True)
    # The checksums are forged to match: the parser itself must refuse the pickle.
    resign(home, victim, buffer.getvalue(), name="forged")
    with pytest.raises(IntegrityError, match=victim.replace(".", "[.]")):
        collection = open_collection("forged", home, embedder=embedder)
        load_probes(collection)  # the probes are parsed by the drift check, not on open
    assert not canary.exists()


# --- no HTML ---------------------------------------------------------------------------------

HTML_CALLS = {"st.html", "components.html", "components.v1.html", "st.components.v1.html"}


def test_the_app_never_renders_html() -> None:
    assert APP_FILES
    for path in APP_FILES:
        assert "unsafe_allow_html" not in path.read_text(encoding="utf-8"), path.name
    for where, call in calls_in(APP_FILES):
        assert call_name(call) not in HTML_CALLS, f"{where}: {call_name(call)}"
