"""The API's own documentation routes: the OpenAPI document at /docs.json (service/openapi.py)
and the Swagger UI page at / with our title, drawn by the Swagger UI assets BentoML serves
under /static_content/ (BentoML's own page also loads a third-party tag manager)."""

import orjson

from service.http.routes import Answer, Call, Route

PAGE = b"""<!DOCTYPE html>
<html lang="en">
  <head>
    <meta charset="UTF-8">
    <title>Credit risk API</title>
    <link rel="stylesheet" type="text/css" href="./static_content/swagger-ui.css" />
    <link rel="stylesheet" type="text/css" href="./static_content/index.css" />
  </head>
  <body>
    <div id="swagger-ui"></div>
    <script src="./static_content/swagger-ui-bundle.js" charset="UTF-8"></script>
    <script src="./static_content/swagger-ui-standalone-preset.js" charset="UTF-8"></script>
    <script>
      window.onload = function () {
        window.ui = SwaggerUIBundle({
          url: "./docs.json",
          dom_id: "#swagger-ui",
          deepLinking: true,
          presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
          layout: "StandaloneLayout",
        });
      };
    </script>
  </body>
</html>
"""


def docs_routes(document: dict[str, object]) -> dict[str, Route]:
    body = orjson.dumps(document)

    async def openapi(call: Call) -> Answer:
        return Answer(body)

    async def page(call: Call) -> Answer:
        return Answer(PAGE, "text/html; charset=utf-8")

    get = ("GET",)
    return {"/docs.json": Route(openapi, methods=get), "/": Route(page, methods=get)}
