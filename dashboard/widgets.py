"""Streamlit pieces every page uses: model choice and loading, uploads, errors, legends.

- :func:`model_picker` lists the task's checkpoints (bundled and ``$DOMAINVIT_MODELS``);
  :func:`loaded_model` builds the chosen one once per process (``st.cache_resource``),
  shared by every session; :func:`exclusive` keeps one session at a time in its forward
  passes.
- :func:`uploaded_file` takes an upload through the size limit into a folder private to
  the browser session, under a sanitised name (:mod:`domainvit.dashboard.uploads`).
- :func:`session_result` keeps a page's result across the reruns that every widget
  change causes, so moving a slider never repeats a prediction.
- :func:`showing_user_errors` turns a :class:`~domainvit.errors.UserError` (the readers'
  own messages for bad files) into ``st.error`` on the page, never a traceback.
"""

from __future__ import annotations

import html
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import streamlit as st

from domainvit.dashboard.checkpoints import (
    Catalogue,
    Checkpoint,
    LoadedModel,
    card,
    discover,
    load_model,
)
from domainvit.dashboard.launch import MAX_UPLOAD_MB, MODELS_ENV
from domainvit.dashboard.uploads import private_folder, remove_folder, save_upload
from domainvit.distribution import InputCheck, InputGuard
from domainvit.errors import UserError
from domainvit.registry import iter_tasks
from domainvit.task import Task

T = TypeVar("T")

_SESSION_FOLDER = "_domainvit_session_folder"


@contextmanager
def showing_user_errors() -> Iterator[None]:
    """Show a UserError raised inside the block as an error message on the page."""
    try:
        yield
    except UserError as exc:
        st.error(str(exc))


@st.cache_resource(ttl=30, show_spinner=False)
def _catalogue(models_env: str) -> Catalogue:
    return discover(list(iter_tasks()), models_env)


def catalogue() -> Catalogue:
    """The checkpoints of every task (listed again at most every 30 s)."""
    return _catalogue(os.environ.get(MODELS_ENV, ""))


def refresh_catalogue() -> None:
    _catalogue.clear()


@st.cache_resource(max_entries=8, show_spinner=False)
def _cached_model(key: str, _checkpoint: Checkpoint) -> LoadedModel:
    return load_model(_checkpoint)


def _loading_message(checkpoint: Checkpoint) -> str:
    from domainvit.datasets.registry import is_prepared

    message = f"Loading {checkpoint.name} ..."
    data = checkpoint.meta["config"].get("data") or {}
    dataset = data.get("dataset")
    own_data = any(data.get(key) for key in ("root", "npz"))
    # checkpoints with ``data_info`` build their model without reading any data
    if dataset and not own_data and "data_info" not in checkpoint.meta \
            and not is_prepared(dataset):
        message += (f" The model's config refers to the sample dataset {dataset}, which is "
                    "not prepared here; if the model needs it (e.g. for its class names), "
                    "it is built first, once (a minute or two on a laptop CPU).")
    return message


def model_picker(task: Task) -> Checkpoint | None:
    """A choice of the task's checkpoints, with the chosen one's card (None: there is
    none, with a note on the page). The model is loaded later, by :func:`loaded_model`."""
    checkpoints = catalogue().for_task(task.name)
    if not checkpoints:
        st.info(
            f"No checkpoint for the {task.name} task here yet. Train one (`domainvit "
            f"train {task.name}/...`, see `domainvit list`) and set the environment "
            f"variable {MODELS_ENV} to the folder holding it (its run directory will do) "
            "before starting the dashboard."
        )
        return None
    labels: dict[str, Checkpoint] = {}
    for checkpoint in checkpoints:
        label = checkpoint.label
        labels[label if label not in labels else f"{label} [{checkpoint.path}]"] = checkpoint
    choice = labels[st.selectbox("Model", list(labels), key=f"{task.name}-model")]
    with st.expander("About this model"):
        checkpoint_card(choice)
    return choice


def loaded_model(checkpoint: Checkpoint) -> LoadedModel | None:
    """The checkpoint's model, built once per process and shared by every session (None:
    it cannot be used here, with the reason on the page)."""
    try:
        with st.spinner(_loading_message(checkpoint)):
            return _cached_model(checkpoint.key, checkpoint)
    except (UserError, FileNotFoundError) as exc:
        st.error(f"Cannot use {checkpoint.name}: {exc}")
        return None


@contextmanager
def exclusive(loaded: LoadedModel) -> Iterator[None]:
    """Hold the model's lock (other sessions wait, with a note on their page)."""
    note = None
    if not loaded.lock.acquire(blocking=False):
        note = st.empty()
        note.info("Another session is using this model; waiting for it to finish.")
        loaded.lock.acquire()
    try:
        # inside, since any Streamlit call may raise to stop or rerun the script
        if note is not None:
            note.empty()
        yield
    finally:
        loaded.lock.release()


@contextmanager
def progress_bar(text: str) -> Iterator[Any]:
    """A progress bar that goes away when the block ends, also when it fails."""
    bar = st.progress(0.0, text=text)
    try:
        yield bar
    finally:
        bar.empty()


def session_folder() -> Path:
    """A folder private to this browser session, removed with the session."""
    if _SESSION_FOLDER not in st.session_state:
        st.session_state[_SESSION_FOLDER] = private_folder()
    return Path(st.session_state[_SESSION_FOLDER].name)


def uploaded_file(label: str, types: Sequence[str], key: str, help: str) -> Path | None:
    """A file uploader; the upload saved on the server (None: nothing usable uploaded).

    The file is saved once per upload, into a folder of its own that goes when the
    upload is replaced or removed (with everything computed from it).
    """
    upload = st.file_uploader(label, type=list(types), key=key, help=help,
                              max_upload_size=MAX_UPLOAD_MB)
    slot = f"_upload:{key}"
    saved = st.session_state.get(slot)
    if saved is not None and (upload is None or saved["id"] != upload.file_id):
        remove_folder(saved["path"].parent)
        del st.session_state[slot]
        saved = None
    if upload is None:
        return None
    if saved is not None:
        return saved["path"]
    try:
        path = save_upload(upload, session_folder())
    except UserError as exc:
        st.error(str(exc))
        return None
    st.session_state[slot] = {"id": upload.file_id, "path": path}
    return path


def sample_or_upload(task: Task, checkpoint: Checkpoint, key: str, labels: Sequence[str],
                     upload: Callable[[], Path | None],
                     ) -> tuple[Path | None, LoadedModel | None]:
    """A page's input: an upload (``upload()``) or one of the task's sample inputs (the
    ``labels``, written for the model's data into a folder of the session's), and the
    loaded model (None: none yet, or it cannot be used, with the reason on the page)."""
    choice = st.radio("Input", ["Upload a file", *labels], horizontal=True, key=f"{key}-input")
    path = None
    if choice not in labels:
        path = upload()
        if path is None:
            return None, None
    loaded = loaded_model(checkpoint)
    if loaded is None or path is not None:
        return path, loaded
    index = list(labels).index(choice)

    def sample() -> Path:
        folder = session_folder() / f"{key}-sample-{index}"
        return task.sample_inputs(loaded.config.data, folder)[index]

    with showing_user_errors(), st.spinner(f"Preparing {choice}"):
        path = session_result(f"{key}-sample", (choice, loaded.checkpoint.key), sample)
    return path, loaded


def session_result(slot: str, key: tuple, compute: Callable[[], T]) -> T:
    """``compute()``, kept in the session while ``key`` stays the same (one per slot).

    A UserError is kept too and raised again, so a bad file is not read at every rerun.
    """
    stored = st.session_state.get(slot)
    if stored is None or stored[0] != key:
        st.session_state.pop(slot, None)
        try:
            stored = (key, compute(), None)
        except UserError as exc:
            stored = (key, None, exc.with_traceback(None))
        st.session_state[slot] = stored
    if stored[2] is not None:
        raise stored[2]
    return stored[1]


def task_page(task: Task, title: str, upload_label: str, types: Sequence[str], key: str,
              help: str, predict: Callable[[LoadedModel, Path, InputGuard], T],
              show: Callable[[T, LoadedModel], None],
              samples: Sequence[tuple[str, Callable[[Path], Path]]] = ()) -> None:
    """The shape every task page shares: title, model picker, upload, then
    ``predict(model, upload, guard)`` once per model, upload and override (kept in the
    session), the input check's outcome, and ``show(result, model)``, with the readers'
    errors and the guard's refusals shown as messages.

    ``guard`` (:class:`~domainvit.distribution.InputGuard`) holds the checkpoint's
    training distribution; ``predict`` checks the upload with it before the model runs.
    A refusal is shown as an error; the page's "Predict anyway" box overrides it.

    ``samples``: ``(label, make)`` pairs offered as inputs beside the upload;
    ``make(folder)`` writes the sample into a folder of the session's and returns its
    path."""
    st.title(title)
    st.caption(task.description)
    checkpoint = model_picker(task)
    if checkpoint is None:
        return
    path = None
    makers = dict(samples)
    choice = st.radio("Input", ["Upload a file", *makers], horizontal=True,
                      key=f"{key}-input") if makers else None
    if choice in makers:
        index = list(makers).index(choice)
        with showing_user_errors(), st.spinner(f"Preparing {choice}"):
            path = session_result(f"{key}-sample", (choice,), lambda: makers[choice](
                session_folder() / f"{key}-sample-{index}"))
    else:
        path = uploaded_file(upload_label, types, key=f"{key}-upload", help=help)
    if path is None:
        return
    force = st.checkbox(
        "Predict anyway", key=f"{key}-force",
        help="Predict an input the model refuses as unlike its training data (another "
             "modality, sensor or unit). The result is then unreliable; the download's "
             "sidecar records the override.")
    loaded = loaded_model(checkpoint)
    if loaded is None:
        return
    with showing_user_errors():
        def compute() -> tuple[T, list[InputCheck]]:
            warnings: list[str] = []
            guard = InputGuard.from_meta(loaded.checkpoint.meta, force=force,
                                         report=warnings.append)
            return predict(loaded, path, guard), guard.checks

        result, checks = session_result(
            f"{key}-result", (loaded.checkpoint.key, str(path), force), compute)
        input_check_notes(checks)
        show(result, loaded)


def input_check_notes(checks: Sequence[InputCheck]) -> None:
    """The input check's outcome on the page: forced refusals and warnings."""
    for check in checks:
        if not check.checked:
            st.warning("This checkpoint records no training distribution: the upload was "
                       "not checked against what the model was trained on.")
        for finding in check.refusals:
            st.warning(f"Predicted anyway, although the model refuses this input: "
                       f"{finding.message}. Treat the result as unreliable.")
        for finding in check.warnings:
            st.warning(f"Unlike the training data: {finding.message}. The result may be "
                       "unreliable there.")


def legend(names: Sequence[str], colours: Sequence[Sequence[int]]) -> None:
    """Names with their colour swatches, in one wrapped row."""
    items = "".join(
        f'<span style="display:inline-flex;align-items:center;margin:0 1em 0.3em 0">'
        f'<span style="width:1em;height:1em;margin-right:0.35em;border:1px solid #888;'
        f'background:rgb({int(r)},{int(g)},{int(b)})"></span>{html.escape(str(name))}</span>'
        for name, (r, g, b) in zip(names, colours, strict=True)
    )
    st.html(f'<div class="domainvit-legend" style="line-height:1.6">{items}</div>')


def _table(values: dict[str, Any]) -> None:
    import pandas as pd

    frame = pd.DataFrame({"value": [_short(v) for v in values.values()]},
                         index=pd.Index(list(values), name="key"))
    st.table(frame)


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def checkpoint_card(checkpoint: Checkpoint) -> None:
    """Training config summary, data and metrics of a checkpoint (from its sidecar)."""
    summary = card(checkpoint.meta)
    st.caption(f"{checkpoint.source}: `{checkpoint.path}`")
    columns = st.columns(2)
    with columns[0]:
        st.markdown("**Model**")
        _table(summary["model"])
        if summary["data"]:
            st.markdown("**Data**")
            _table(summary["data"])
    with columns[1]:
        st.markdown("**Training**")
        _table(summary["training"])
        st.markdown("**Validation metrics**")
        if summary["metrics"]:
            _table(summary["metrics"])
        else:
            st.caption("none recorded")


def download(label: str, path: Path, file_name: str, mime: str, key: str) -> None:
    st.download_button(label, data=path.read_bytes(), file_name=file_name, mime=mime,
                       key=key, on_click="ignore")
