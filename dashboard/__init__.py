"""The Streamlit dashboard: one page per task (upload a scan, look, download)."""
