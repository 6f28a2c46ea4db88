"""The dashboard's task pages: ``<task name>.py`` draws the page of the task of that name.

Each module has a function ``render(task)`` that draws the page with Streamlit, calling
the task's own functions (reading, predicting, writing) and the shared pieces of
:mod:`domainvit.dashboard.widgets`; :mod:`domainvit.dashboard.app` finds the module by
the task's name. Tasks never import these modules.
"""
