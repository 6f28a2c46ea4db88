"""The domainvit dashboard: ``domainvit dashboard``, or ``streamlit run dashboard/app.py``.

A home page, then one page per registered task that has one: the module
``domainvit.dashboard.task_pages.<task name>`` (``dashboard/task_pages/<task name>.py``)
with a function ``render(task)``. A new task adds its page by adding that module, without any
change here. The module is imported when its page is opened, so a task whose page needs
a missing package breaks only that page.

Navigation is ``st.navigation``'s, built here from the registry. The page modules are
not in a folder named ``pages/``: Streamlit runs an app with such a folder beside its
script as a multipage app of the folder's scripts until ``st.navigation`` is first
called, so a fresh server's first visit to ``/<task>`` would run a page module as a
script (a test keeps that name free).
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
from collections.abc import Callable

import streamlit as st

from domainvit.dashboard import home
from domainvit.errors import UserError
from domainvit.registry import iter_tasks
from domainvit.task import Task

#: the package holding one page module per task
PAGES_PACKAGE = "domainvit.dashboard.task_pages"


def page_module_name(task: Task) -> str:
    return f"{PAGES_PACKAGE}.{task.name}"


def has_page(task: Task) -> bool:
    """Whether ``task`` has a page module (found without importing it)."""
    return importlib.util.find_spec(page_module_name(task)) is not None


def page_function(task: Task) -> Callable[[Task], None]:
    """The ``render`` function of the page module of ``task``."""
    name = page_module_name(task)
    try:
        module = importlib.import_module(name)
    except ImportError as exc:
        raise UserError(f"the {task.name} page needs {exc.name or exc}, which is not "
                        "installed here") from None
    function = getattr(module, "render", None)
    if not callable(function):
        raise UserError(f"task {task.name}: the page module {name} has no function "
                        "render(task)")
    return function


def render_task_page(task: Task) -> None:
    try:
        render = page_function(task)
    except UserError as exc:
        st.error(str(exc))
        return
    render(task)


def task_pages(tasks: list[Task]) -> dict[str, st.Page]:
    """One page per task with a page module, at ``/<task name>``."""
    return {
        task.name: st.Page(functools.partial(render_task_page, task), title=task.name,
                           url_path=task.name, help=task.description)
        for task in tasks if has_page(task)
    }


st.set_page_config(page_title="domainvit", layout="wide")
with st.spinner("Loading the tasks ..."):
    tasks = list(iter_tasks())
pages = task_pages(tasks)
home_page = st.Page(functools.partial(home.render, tasks, pages), title="Home",
                    url_path="home", default=True)
st.navigation([home_page, *pages.values()]).run()
