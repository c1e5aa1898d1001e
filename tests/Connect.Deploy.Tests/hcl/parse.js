// Parses HCL2 files (Terraform) into JSON with hcl2-parser and prints {"<file>": <parsed>, ...}. Exits 1 with the
// file's name when one does not parse (the parser gives no message).
const fs = require("fs");
const hcl = require("hcl2-parser");

const result = {};
for (const file of process.argv.slice(2)) {
  const [json, error] = hcl.parseToString(fs.readFileSync(file, "utf8"));
  if (error !== null || !json) {
    process.stderr.write(`${file}: not valid HCL\n`);
    process.exit(1);
  }
  result[file] = JSON.parse(json);
}
process.stdout.write(JSON.stringify(result));
