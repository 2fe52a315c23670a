"""The flagship application's web side: exports, imports, search and webhook endpoints."""
