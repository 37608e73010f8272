// Validates Grafana dashboard JSON files against the JSON Schema generated from
// @grafana/schema's `Dashboard` TypeScript type (the classic dashboard model that file
// provisioning loads). Usage: node validate.mjs SCHEMA_CACHE.json DASHBOARD.json...
// Prints one line per problem; exits 1 when any file is invalid.
import { createRequire } from "node:module";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import Ajv from "ajv";
import { createGenerator } from "ts-json-schema-generator";

const require = createRequire(import.meta.url);
const [schemaCache, ...dashboards] = process.argv.slice(2);

function dashboardSchema() {
  if (existsSync(schemaCache)) return JSON.parse(readFileSync(schemaCache, "utf8"));
  const root = dirname(require.resolve("@grafana/schema/package.json"));
  const schema = createGenerator({
    path: join(root, "dist/types/raw/dashboard/x/types.gen.d.ts"),
    type: "Dashboard",
    skipTypeCheck: true,
    additionalProperties: false,
  }).createSchema("Dashboard");
  writeFileSync(schemaCache, JSON.stringify(schema));
  return schema;
}

const ajv = new Ajv({ allErrors: true, strict: false });
const validate = ajv.compile(dashboardSchema());
let failed = false;
for (const file of dashboards) {
  const dashboard = JSON.parse(readFileSync(file, "utf8"));
  if (!validate(dashboard)) {
    failed = true;
    for (const error of validate.errors) {
      console.log(`${file}: ${error.instancePath || "/"} ${error.message} ${JSON.stringify(error.params)}`);
    }
  }
}
process.exit(failed ? 1 : 0);
