"""Media types the routes read and write, and the data plane's body formats they map to."""

from service.scoring import AnswerFormat, BodyFormat

JSON = "application/json"
CSV = "text/csv"
ARROW_STREAM = "application/vnd.apache.arrow.stream"
ARROW_FILE = "application/vnd.apache.arrow.file"
OCTET_STREAM = "application/octet-stream"  # the Open Inference Protocol's binary tensors

BODY_FORMATS: dict[str, BodyFormat] = {
    JSON: BodyFormat.JSON,
    CSV: BodyFormat.CSV,
    ARROW_STREAM: BodyFormat.ARROW_STREAM,
    ARROW_FILE: BodyFormat.ARROW_FILE,
}
ANSWER_MEDIA_TYPES: dict[AnswerFormat, str] = {
    AnswerFormat.JSON: JSON,
    AnswerFormat.ARROW: ARROW_STREAM,
}


def answer_format(accept: str) -> AnswerFormat:
    """Arrow when the client lists the Arrow stream type in Accept, else JSON."""
    return AnswerFormat.ARROW if ARROW_STREAM in accept else AnswerFormat.JSON
