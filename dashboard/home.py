"""The home page: the registered tasks, their models, and a card per checkpoint."""

from __future__ import annotations

import streamlit as st

from domainvit.dashboard import widgets
from domainvit.dashboard.launch import MAX_UPLOAD_MB, MODELS_ENV
from domainvit.registry import unavailable_tasks
from domainvit.task import Task


def render(tasks: list[Task], pages: dict[str, st.Page]) -> None:
    st.title("domainvit")
    st.markdown(
        "Upload a scan, a raster, a point cloud, a hologram, a frame or a video on a task's "
        "page, pick a model, look at the result and "
        f"download it. Uploads up to {MAX_UPLOAD_MB} MB; they stay in a folder private to "
        "this browser session and are removed with it."
    )
    catalogue = widgets.catalogue()
    if catalogue.folders:
        shown = ", ".join(f"`{folder}`" for folder in catalogue.folders)
        missing = [str(folder) for folder in catalogue.folders if not folder.is_dir()]
        st.caption(f"Extra checkpoints from {MODELS_ENV}: {shown}" +
                   (f" (not a folder: {', '.join(missing)})" if missing else ""))
    else:
        st.caption(f"Set {MODELS_ENV} to a folder of checkpoints (``*.safetensors`` with "
                   "their ``.json`` sidecars; run directories will do) to offer your own "
                   "models next to the bundled ones.")
    if st.button("Look for new checkpoints", key="refresh-checkpoints"):
        widgets.refresh_catalogue()
        catalogue = widgets.catalogue()

    for task in tasks:
        st.header(task.name, divider="gray")
        st.markdown(task.description)
        if task.name in pages and st.button(f"Open the {task.name} page",
                                            key=f"open-{task.name}", type="primary"):
            st.switch_page(pages[task.name])
        st.markdown("**Models**\n\n" + "\n".join(
            f"- `{entry.name}`: {entry.description}" for entry in task.models))
        checkpoints = catalogue.for_task(task.name)
        if not checkpoints:
            st.caption(f"No checkpoint for {task.name} here yet.")
        for checkpoint in checkpoints:
            with st.container(border=True):
                st.subheader(f"{checkpoint.name} ({checkpoint.model})")
                widgets.checkpoint_card(checkpoint)

    unavailable = unavailable_tasks()
    if unavailable or catalogue.unreadable:
        st.header("Not available", divider="gray")
        for name, reason in unavailable.items():
            st.warning(f"Task {name}: {reason}")
        for entry in catalogue.unreadable:
            st.warning(f"Checkpoint `{entry.path}`: {entry.reason}")
