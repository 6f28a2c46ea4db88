"""File readers/writers and the sample-data builders that tasks register.

Depends on neither the tasks nor the dashboard; both use it.
"""
