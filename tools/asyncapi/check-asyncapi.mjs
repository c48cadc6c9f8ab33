// Parse an AsyncAPI document with the official parser (@asyncapi/parser: the spec's JSON Schema, its
// Spectral ruleset, $ref resolution), as a subscriber's code generator or validator would. Print every
// diagnostic; exit 1 if any has error severity or if the document is not self-contained (it needs a
// file or URL to resolve a $ref), 0 otherwise, 2 on bad usage.
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import parserPkg from "@asyncapi/parser";

const { Parser, DiagnosticSeverity } = parserPkg;

const file = process.argv[2];
if (!file) {
  console.error("usage: node check-asyncapi.mjs ASYNCAPI_FILE");
  process.exit(2);
}

// Tried before the parser's own file/http readers: note the reference and answer an empty document, so
// the parse goes on and every external reference is reported, none is read.
const external = [];
const refuse = (scheme) => ({
  schema: scheme,
  order: 1,
  read: (uri) => {
    external.push(uri.toString());
    return "{}";
  },
});
const parser = new Parser({ __unstable: { resolver: { resolvers: ["file", "http", "https"].map(refuse) } } });
const { document, diagnostics } = await parser.parse(readFileSync(file, "utf8"), { source: resolve(file) });

const severityName = (d) => Object.keys(DiagnosticSeverity).find((k) => DiagnosticSeverity[k] === d.severity);
for (const d of diagnostics) {
  console.error(`${severityName(d)} ${d.code} at /${(d.path || []).join("/")}: ${d.message}`);
}
for (const uri of new Set(external)) console.error(`not self-contained: $ref to ${uri}`);
const errors = diagnostics.filter((d) => d.severity === DiagnosticSeverity.Error);
if (errors.length > 0 || external.length > 0 || !document) {
  console.error(`asyncapi parser: ${file} refused (${errors.length} errors, ${new Set(external).size} external refs)`);
  process.exit(1);
}
console.log(
  `asyncapi parser: ${file} valid (AsyncAPI ${document.version()}, ${document.allMessages().length} messages, ` +
    `${diagnostics.length} non-error diagnostics)`,
);
