"""ui stand-in: the saved-file results and the video preview message of core Save Video."""


class SavedResult(dict):
    def __init__(self, filename, subfolder, type):
        super().__init__(filename=filename, subfolder=subfolder, type=type.value)


class PreviewVideo:
    def __init__(self, values, **kwargs):
        self.values = values

    def as_dict(self):
        return {"images": self.values, "animated": (True,)}
