"""Stand-in for comfy.utils.ProgressBar; the server's hook checks for an interrupt on every update."""

from . import model_management

updates = []  # (value, total) of every update, for tests


class ProgressBar:
    def __init__(self, total, node_id=None):
        self.total, self.current = total, 0

    def update_absolute(self, value, total=None, preview=None):
        if total is not None:
            self.total = total
        self.current = value
        updates.append((value, self.total))
        model_management.throw_exception_if_processing_interrupted()

    def update(self, value):
        self.update_absolute(self.current + value)
