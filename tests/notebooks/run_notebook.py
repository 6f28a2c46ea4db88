"""Execute a notebook with parameters, as papermill would: ``python run_notebook.py
NOTEBOOK OUTPUT NAME=VALUE ...`` (values are Python literals).

A cell tagged ``injected-parameters`` holding the assignments is inserted after the cell
tagged ``parameters``; the notebook runs with nbclient in its own folder and the executed
copy is written to OUTPUT, also when a cell fails (exit status 1 then).
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError


def inject_parameters(notebook: nbformat.NotebookNode, values: dict[str, object]) -> None:
    tagged = [i for i, cell in enumerate(notebook.cells)
              if "parameters" in cell.get("metadata", {}).get("tags", [])]
    if len(tagged) != 1:
        raise ValueError(f"expected one cell tagged 'parameters', found {len(tagged)}")
    source = "\n".join(f"{name} = {value!r}" for name, value in values.items())
    cell = nbformat.v4.new_code_cell(source, metadata={"tags": ["injected-parameters"]})
    notebook.cells.insert(tagged[0] + 1, cell)


def main(argv: list[str]) -> int:
    notebook_path, output_path, *assignments = argv
    values = {}
    for item in assignments:
        name, _, text = item.partition("=")
        values[name] = ast.literal_eval(text)
    notebook = nbformat.read(notebook_path, as_version=4)
    inject_parameters(notebook, values)
    client = NotebookClient(notebook, timeout=900, kernel_name="python3",
                            resources={"metadata": {"path": str(Path(notebook_path).parent)}})
    status = 0
    try:
        client.execute()
    except CellExecutionError as error:
        print(error, file=sys.stderr)
        status = 1
    finally:
        nbformat.write(notebook, output_path)
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
