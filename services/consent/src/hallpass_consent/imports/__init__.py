"""Background imports of MIS exports, with the progress the office's progress bar shows."""
