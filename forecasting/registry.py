"""The model registry: forecasters by name, trained versions by `name@version`, artifacts by content.

Names. Built-in forecasters are listed in `BUILTINS`; third-party ones come from the Python
entry-point group `autobidder.forecasters` (`name = "package.module:Class"`). Entry points are
re-read on every lookup of a name that is not built in, so a plugin installed while the worker
runs is found at the next cycle. (A NEW version of plugin CODE that is already imported needs a
worker restart: Python cannot safely re-import a module under running code.) A plugin cannot
shadow a built-in name; two plugins under one name are an error naming both.

Artifacts. `ModelStore` keeps trained models under `<data_dir>/models/`:

    <sha256>/manifest.json     name, class, code version, parameters, training window and data
                               hash, and the SHA-256 of every file the model saved
    <sha256>/files/...         what the forecaster's `save(directory)` wrote
    versions/<name>/<version>.json   {"artifact": "<sha256>"}: the version -> artifact map

The artifact id is the SHA-256 of its canonical manifest, which covers every file, so an artifact
can be verified on load and is never overwritten: a directory is published by an atomic rename
and left read-only; a version file is created exclusively and never rewritten. Versions are
numbered 1, 2, ... per name unless the trainer names one.

Packaged versions. Trained models that ship inside the project live in `forecasting/packaged/`,
laid out like a store (`<sha256>/`, `versions/<name>/<version>.json`, see its PROVENANCE.md). Every
`ModelStore` also reads them, read-only and verified like any artifact, so `spike_mlp@sa1-2022`
resolves in a fresh `<data_dir>/models` (the demo, a fresh `autobidder up`, a backtest) with no
training and no `../shared`. A store cannot register a version under a packaged version's name.

References. `name@version` names a trained version; `name` or `name@latest` the newest one. A
forecaster that learns nothing (`needs_training = False`, like seasonal naive) also resolves
`name` and `name@<its code version>` to a fresh instance, and `name@<an older code version>`
when it keeps one (`code_versions` and `for_version`, as `analog_ensemble@1`). Resolution reads
the versions folder at every call, so a newly trained version is used at the next cycle without
a restart; loaded models are cached by artifact id, which is safe because an artifact never
changes.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from autobidder import __version__
from forecasting.errors import ModelLoadError, ModelNotFoundError
from forecasting.history import History
from forecasting.protocol import Forecaster, TrainingInfo

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "autobidder.forecasters"
BUILTINS: dict[str, str] = {
    "seasonal_naive": "forecasting.seasonal_naive:SeasonalNaiveForecaster",
    "seasonal_naive_weekly": "forecasting.seasonal_naive:WeeklySeasonalNaiveForecaster",
    "quantile_mlp": "forecasting.quantile_mlp:QuantileMLPForecaster",
    "spike_mlp": "forecasting.spike_mlp:SpikeMLPForecaster",
    "analog_ensemble": "forecasting.analog_ensemble:AnalogEnsembleForecaster",
}
LATEST = "latest"
PACKAGED_DIR = Path(__file__).resolve().parent / "packaged"
_REQUIRED = ("fit", "predict", "save", "load")
_CACHE_SIZE = 8


@dataclass(frozen=True)
class RegisteredModel:
    name: str
    target: str  # "module:Class"
    source: str  # "builtin" or "plugin <distribution> <version>"


@dataclass(frozen=True)
class ModelRef:
    name: str
    version: str  # LATEST when not given

    @classmethod
    def parse(cls, text: str) -> ModelRef:
        name, _, version = text.strip().partition("@")
        if not name:
            raise ModelNotFoundError(f"model {text!r}: expected name or name@version")
        return cls(name, version or LATEST)

    def __str__(self) -> str:
        return f"{self.name}@{self.version}"


@dataclass(frozen=True)
class LoadedModel:
    """A forecaster ready to predict, with what the forecast fact records about it."""

    name: str
    version: str
    forecaster: Forecaster
    artifact_sha256: str | None = None
    training: TrainingInfo | None = None


@dataclass(frozen=True)
class TrainedVersion:
    name: str
    version: str
    artifact_sha256: str
    training: TrainingInfo
    code_version: str
    params: dict[str, Any]
    created_utc: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": f"{self.name}@{self.version}",
            "artifact_sha256": self.artifact_sha256,
            "code_version": self.code_version,
            "params": self.params,
            "training_window_first_interval_end": self.training.window_first_interval_end.isoformat(),
            "training_window_last_interval_end": self.training.window_last_interval_end.isoformat(),
            "training_data_sha256": self.training.data_sha256,
            "created_utc": self.created_utc,
        }


# -- names -------------------------------------------------------------------------------------


def _plugins() -> dict[str, list[RegisteredModel]]:
    found: dict[str, list[RegisteredModel]] = {}
    for entry in metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = entry.dist
        source = f"plugin {dist.name} {dist.version}" if dist is not None else "plugin"
        found.setdefault(entry.name, []).append(RegisteredModel(entry.name, entry.value, source))
    return found


def available_models() -> dict[str, RegisteredModel]:
    """Every forecaster name that can be used: built-ins, then plugins (re-read on each call)."""
    models = {name: RegisteredModel(name, target, "builtin") for name, target in BUILTINS.items()}
    for name, entries in sorted(_plugins().items()):
        if name in models:
            log.warning("plugin forecaster %r (%s) ignored: the name is built in", name, entries[0].source)
        elif len(entries) == 1:
            models[name] = entries[0]
    return models


def registered(name: str) -> RegisteredModel:
    if name in BUILTINS:
        return RegisteredModel(name, BUILTINS[name], "builtin")
    entries = _plugins().get(name, [])
    if len(entries) > 1:
        raise ModelLoadError(
            f"model {name!r}: registered by several plugins ({', '.join(e.source for e in entries)})"
        )
    if not entries:
        known = ", ".join(sorted(available_models()))
        raise ModelNotFoundError(f"model {name!r}: no forecaster of that name (known: {known})")
    return entries[0]


def load_class(name: str) -> type[Forecaster]:
    """The forecaster class registered under `name`, checked for the protocol's members."""
    entry = registered(name)
    module_name, _, attribute = entry.target.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in attribute.split("."):
            obj = getattr(obj, part)
    except Exception as exc:  # a plugin may fail to import in any way; name it and move on
        raise ModelLoadError(
            f"model {name!r}: cannot import {entry.target} ({entry.source}): {exc!r}"
        ) from exc
    missing = [m for m in _REQUIRED if not callable(getattr(obj, m, None))]
    missing += [a for a in ("name", "version") if not isinstance(getattr(obj, a, None), str)]
    if missing:
        raise ModelLoadError(
            f"model {name!r}: {entry.target} lacks {', '.join(missing)} of the Forecaster protocol"
        )
    cls: type[Forecaster] = obj
    return cls


def needs_training(cls: type[Forecaster]) -> bool:
    return bool(getattr(cls, "needs_training", True))


def code_versions(cls: type[Forecaster]) -> tuple[str, ...]:
    """The code versions an untrained model resolves: its own, and any older ones it keeps
    (`code_versions`, each built by `for_version`), so a strategy naming one still trades it."""
    return tuple(getattr(cls, "code_versions", (cls.version,)))


def fresh(cls: type[Forecaster], version: str) -> Forecaster:
    """A new instance of an untrained model at code version `version`."""
    if version != cls.version:
        return cls.for_version(version)  # type: ignore[attr-defined, no-any-return]
    return cls()


# -- artifacts and versions --------------------------------------------------------------------


def _canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def _file_hashes(root: Path) -> dict[str, str]:
    hashes = {}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        hashes[path.relative_to(root).as_posix()] = hashlib.sha256(path.read_bytes()).hexdigest()
    return hashes


class ModelStore:
    """Content-addressed trained models under `root` (normally `<data_dir>/models`), plus the
    read-only packaged versions under `packaged` (None: none)."""

    def __init__(self, root: Path, packaged: Path | None = PACKAGED_DIR) -> None:
        self.root = root
        self.packaged = packaged if packaged is not None and packaged.resolve() != root.resolve() else None
        self._cache: OrderedDict[str, Forecaster] = OrderedDict()

    def _versions_dir(self, name: str) -> Path:
        return self.root / "versions" / name

    def packaged_versions(self, name: str) -> list[str]:
        """Versions of `name` that ship with the project (forecasting/packaged)."""
        if self.packaged is None:
            return []
        folder = self.packaged / "versions" / name
        return sorted(p.stem for p in folder.glob("*.json")) if folder.is_dir() else []

    def _record(self, name: str, version: str) -> Path:
        """The version record: this store's, or the packaged one when this store has none."""
        own = self._versions_dir(name) / f"{version}.json"
        if not own.exists() and version in self.packaged_versions(name) and self.packaged is not None:
            return self.packaged / "versions" / name / f"{version}.json"
        return own

    def _artifact_dir(self, artifact_sha256: str) -> Path:
        own = self.root / artifact_sha256
        if not own.exists() and self.packaged is not None and (self.packaged / artifact_sha256).is_dir():
            return self.packaged / artifact_sha256
        return own

    # writing

    def put(self, model: Forecaster, name: str, params: dict[str, Any], training: TrainingInfo) -> str:
        """Save `model` as an artifact and return its SHA-256 (an identical artifact is kept as is)."""
        self.root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=self.root))
        try:
            model.save(staging / "files")
            manifest = {
                "name": name,
                "class": registered(name).target,
                "code_version": model.version,
                "params": params,
                "training": {
                    "window_first_interval_end": training.window_first_interval_end.isoformat(),
                    "window_last_interval_end": training.window_last_interval_end.isoformat(),
                    "data_sha256": training.data_sha256,
                },
                "files": _file_hashes(staging / "files"),
                "autobidder_version": __version__,
            }
            sha = hashlib.sha256(_canonical(manifest)).hexdigest()
            (staging / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True))
            target = self.root / sha
            if target.exists():
                return sha  # the same content is already stored; never overwrite it
            for path in staging.rglob("*"):
                if path.is_file():
                    path.chmod(0o444)
            try:
                os.rename(staging, target)
            except OSError:
                if not target.exists():
                    raise
                # Another trainer published the same content first: keep theirs.
            return sha
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)

    def register_version(self, name: str, artifact_sha256: str, version: str | None = None) -> str:
        """Give an artifact a version name (next integer by default); never rewrites a version."""
        folder = self._versions_dir(name)
        folder.mkdir(parents=True, exist_ok=True)
        record = {"artifact": artifact_sha256, "created_utc": datetime.now(UTC).isoformat()}
        while True:
            chosen = version or str(1 + max((int(v) for v in self.versions(name) if v.isdigit()), default=0))
            if chosen == LATEST or "@" in chosen or "/" in chosen:
                raise ValueError(f"version {chosen!r}: reserved or not a plain name")
            if chosen in self.packaged_versions(name):
                raise FileExistsError(f"model {name}@{chosen} is a packaged version; choose another name")
            try:
                with open(folder / f"{chosen}.json", "x") as handle:
                    handle.write(json.dumps(record, sort_keys=True))
                return chosen
            except FileExistsError:
                if version is not None:
                    raise FileExistsError(
                        f"model {name}@{version} already exists; versions are never overwritten"
                    ) from None
                time.sleep(0.01)  # another trainer took this number; take the next

    # reading

    def versions(self, name: str) -> list[str]:
        """Versions of `name`: the packaged ones, then this store's trained ones oldest first
        (numbers in numeric order), so `latest` is this store's newest, or the packaged one."""
        folder = self._versions_dir(name)
        names = [p.stem for p in folder.glob("*.json")] if folder.is_dir() else []
        own = sorted(names, key=lambda v: (0, int(v), v) if v.isdigit() else (1, 0, v))
        return [v for v in self.packaged_versions(name) if v not in own] + own

    def all_versions(self) -> dict[str, list[str]]:
        names: set[str] = set()
        for root in (self.root, self.packaged):
            folder = None if root is None else root / "versions"
            if folder is not None and folder.is_dir():
                names.update(p.name for p in folder.iterdir() if p.is_dir())
        return {name: self.versions(name) for name in sorted(names)}

    def artifact_of(self, name: str, version: str) -> str:
        path = self._record(name, version)
        try:
            return str(json.loads(path.read_text())["artifact"])
        except FileNotFoundError:
            known = ", ".join(self.versions(name)) or "none"
            raise ModelNotFoundError(
                f"model {name}@{version}: no such trained version (known: {known})"
            ) from None
        except (ValueError, KeyError) as exc:
            raise ModelLoadError(f"model {name}@{version}: unreadable version record {path}: {exc}") from exc

    def manifest(self, artifact_sha256: str) -> dict[str, Any]:
        path = self._artifact_dir(artifact_sha256) / "manifest.json"
        try:
            manifest: dict[str, Any] = json.loads(path.read_text())
        except FileNotFoundError:
            raise ModelNotFoundError(f"artifact {artifact_sha256}: not in {self.root}") from None
        except ValueError as exc:
            raise ModelLoadError(f"artifact {artifact_sha256}: unreadable manifest: {exc}") from exc
        return manifest

    def describe(self, name: str, version: str) -> TrainedVersion:
        sha = self.artifact_of(name, version)
        manifest = self.manifest(sha)
        record = json.loads(self._record(name, version).read_text())
        return TrainedVersion(
            name=name,
            version=version,
            artifact_sha256=sha,
            training=_training(manifest),
            code_version=str(manifest["code_version"]),
            params=dict(manifest.get("params", {})),
            created_utc=str(record.get("created_utc", "")),
        )

    def verify(self, artifact_sha256: str) -> dict[str, Any]:
        """The manifest, after checking that it and every file still hash to what was stored."""
        manifest = self.manifest(artifact_sha256)
        if hashlib.sha256(_canonical(manifest)).hexdigest() != artifact_sha256:
            raise ModelLoadError(f"artifact {artifact_sha256}: manifest does not match its content address")
        actual = _file_hashes(self._artifact_dir(artifact_sha256) / "files")
        if actual != manifest["files"]:
            changed = sorted(set(actual.items()) ^ set(manifest["files"].items()))
            raise ModelLoadError(
                f"artifact {artifact_sha256}: files changed since it was stored: {changed[:3]}"
            )
        return manifest

    def resolve(self, ref: ModelRef) -> LoadedModel:
        """The model a reference names right now (see the module docstring for the rules)."""
        cls = load_class(ref.name)
        versions = self.versions(ref.name)
        if ref.version == LATEST and versions:
            return self._load_version(cls, ref.name, versions[-1])
        if ref.version in versions:
            return self._load_version(cls, ref.name, ref.version)
        if not needs_training(cls) and (ref.version == LATEST or ref.version in code_versions(cls)):
            version = cls.version if ref.version == LATEST else ref.version
            return LoadedModel(ref.name, version, fresh(cls, version))
        if ref.version == LATEST:
            raise ModelNotFoundError(
                f"model {ref.name}: no trained version in {self.root} "
                f"(train one with `autobidder forecast train {ref.name} --prices FILE`)"
            )
        known = ", ".join(versions) or "none"
        raise ModelNotFoundError(f"model {ref}: no such trained version (known: {known})")

    def _load_version(self, cls: type[Forecaster], name: str, version: str) -> LoadedModel:
        sha = self.artifact_of(name, version)
        manifest = self.verify(sha) if sha not in self._cache else self.manifest(sha)
        if manifest["name"] != name:
            raise ModelLoadError(f"model {name}@{version}: artifact {sha} holds a {manifest['name']!r} model")
        forecaster = self._cache.get(sha)
        if forecaster is None:
            try:
                forecaster = cls.load(self._artifact_dir(sha) / "files")
            except ModelLoadError:
                raise
            except Exception as exc:  # plugin code: any failure to load is a load error
                raise ModelLoadError(f"model {name}@{version}: {cls.__name__}.load failed: {exc!r}") from exc
            self._cache[sha] = forecaster
            while len(self._cache) > _CACHE_SIZE:
                self._cache.popitem(last=False)
        self._cache.move_to_end(sha)
        return LoadedModel(name, version, forecaster, sha, _training(manifest))


def _training(manifest: dict[str, Any]) -> TrainingInfo:
    t = manifest["training"]
    return TrainingInfo(
        datetime.fromisoformat(t["window_first_interval_end"]),
        datetime.fromisoformat(t["window_last_interval_end"]),
        str(t["data_sha256"]),
    )


def train(
    store: ModelStore,
    name: str,
    history: History,
    params: dict[str, Any] | None = None,
    version: str | None = None,
) -> TrainedVersion:
    """Fit `name` on `history`, store the artifact, and register it as a new version, unless a
    version of `name` already holds this exact artifact (same data, parameters and code give the
    same content address): then that version is returned, so `@2` never merely repeats `@1`."""
    params = dict(params or {})
    cls = load_class(name)
    try:
        model = cls(**params)
    except TypeError as exc:
        raise ValueError(f"model {name!r}: bad parameters {params}: {exc}") from exc
    model.fit(history)
    training = TrainingInfo.of(history)
    sha = store.put(model, name, params, training)
    if version is None:
        same = [v for v in store.versions(name) if store.artifact_of(name, v) == sha]
        if same:
            return store.describe(name, same[0])
    chosen = store.register_version(name, sha, version)
    return store.describe(name, chosen)
