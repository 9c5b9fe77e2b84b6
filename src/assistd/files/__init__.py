"""Files: uploads, generated outputs and their bytes."""
