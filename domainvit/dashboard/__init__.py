"""The Streamlit dashboard: one page per task (upload a scan, look, download).

Started by ``domainvit dashboard`` (:mod:`.launch`: the server settings and the
``streamlit run`` command) or ``streamlit run dashboard/app.py`` (:mod:`.app`: the home
page of :mod:`.home`, then the page of every task that has one: the module
``domainvit.dashboard.task_pages.<task name>``). The pages call their task's functions (the
tasks never import the dashboard) and use the shared pieces of :mod:`.widgets` (model
choice and loading, uploads, errors, legends); :mod:`.checkpoints` finds the checkpoints
(bundled and ``$DOMAINVIT_MODELS``) and :mod:`.uploads` handles uploaded files;
:mod:`.testing` runs a real server for browser tests. Importing this package does not
import Streamlit.
"""

from domainvit._layout import mapped_package_path

# the modules of the top-level dashboard/ folder (see domainvit._layout)
__path__ = mapped_package_path(__path__, "dashboard")
