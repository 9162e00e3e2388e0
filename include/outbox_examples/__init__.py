from pathlib import Path

# The examples' own tables (sql/examples in the repository; the examples are not part of the package).
EXAMPLES_SQL_DIR = Path(__file__).resolve().parents[2] / "sql" / "examples"
