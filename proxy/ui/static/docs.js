// Renders /openapi.json with the vendored Swagger UI (no inline script: CSP script-src 'self').
// Tags start collapsed: the document has well over a hundred operations.
window.addEventListener("DOMContentLoaded", () => {
  window.SwaggerUIBundle({ url: "/openapi.json", dom_id: "#swagger", deepLinking: true, docExpansion: "none" });
});
