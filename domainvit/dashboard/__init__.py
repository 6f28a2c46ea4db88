"""The Streamlit dashboard: one page per task (upload a scan, look, download).

Started by ``domainvit dashboard`` (:mod:`.launch`: the server settings and the
``streamlit run`` command) or ``streamlit run dashboard/app.py`` (:mod:`.app`: the home
page of :mod:`.home`, then one page per task whose ``Task.dashboard_view`` names a view
function). The views live with their tasks (``domainvit.tasks.<name>.view``) and use the
shared pieces of :mod:`.widgets` (model choice and loading, uploads, errors, legends);
:mod:`.checkpoints` finds the checkpoints (bundled and ``$DOMAINVIT_MODELS``) and
:mod:`.uploads` handles uploaded files. Importing this package does not import Streamlit.
"""

from domainvit._layout import mapped_package_path

# the modules of the top-level dashboard/ folder (see domainvit._layout)
__path__ = mapped_package_path(__path__, "dashboard")
