"""The API's own documentation routes: the OpenAPI document at /docs.json (service/openapi.py)
and the Swagger UI page at / with our title, drawn by the Swagger UI assets BentoML serves
under /static_content/ (BentoML's own page also loads a third-party tag manager)."""

from service.http.routes import Answer, Call, RouteContext

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


async def openapi_document(context: RouteContext, call: Call) -> Answer:
    return Answer(context.document)


async def swagger_page(context: RouteContext, call: Call) -> Answer:
    return Answer(PAGE, "text/html; charset=utf-8")
