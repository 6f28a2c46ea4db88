"""File readers/writers and the sample-data builders that tasks register.

Depends on neither the tasks nor the dashboard; both use it.
"""

from domainvit._layout import mapped_package_path

# the modules of the top-level datasets/ folder (see domainvit._layout)
__path__ = mapped_package_path(__path__, "datasets")
