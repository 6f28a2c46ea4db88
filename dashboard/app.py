"""The domainvit dashboard: ``domainvit dashboard``, or ``streamlit run dashboard/app.py``.

A home page, then one page per registered task that names a view
(:attr:`domainvit.registry.Task.dashboard_view`, ``"module:function"``): a new task adds
its page by setting that attribute, without any change here. The view is imported when
its page is opened, so a task whose page needs a missing package breaks only that page.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable

import streamlit as st

from domainvit.dashboard import home
from domainvit.errors import UserError
from domainvit.registry import Task, iter_tasks


def view_function(task: Task) -> Callable[[Task], None]:
    """The function named by ``task.dashboard_view``."""
    module_name, _, function_name = (task.dashboard_view or "").partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise UserError(f"the {task.name} page needs {exc.name or exc}, which is not "
                        "installed here") from None
    function = getattr(module, function_name, None)
    if not callable(function):
        raise UserError(f"task {task.name}: dashboard_view {task.dashboard_view!r} does not "
                        "name a function (expected 'module:function')")
    return function


def render_task_page(task: Task) -> None:
    try:
        render = view_function(task)
    except UserError as exc:
        st.error(str(exc))
        return
    render(task)


def task_pages(tasks: list[Task]) -> dict[str, st.Page]:
    """One page per task with a view, at ``/<task name>``."""
    return {
        task.name: st.Page(functools.partial(render_task_page, task), title=task.name,
                           url_path=task.name, help=task.description)
        for task in tasks if task.dashboard_view
    }


st.set_page_config(page_title="domainvit", layout="wide")
with st.spinner("Loading the tasks ..."):
    tasks = list(iter_tasks())
pages = task_pages(tasks)
home_page = st.Page(functools.partial(home.render, tasks, pages), title="Home",
                    url_path="home", default=True)
st.navigation([home_page, *pages.values()]).run()
