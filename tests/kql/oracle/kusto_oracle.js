// Development oracle: Microsoft's own KQL parser and binder (npm @kusto/language-service-next), run in Node.
// Not a dependency of Assay. Usage:
//   NODE_PATH=/path/to/node_modules node kusto_oracle.js tables.json < queries.jsonl > diagnostics.jsonl
// tables.json: {"TableName": [["Column", "kusto type"], ...]}; each input line: {"id": ..., "text": ...};
// each output line: {"id": ..., "errors": [[offset, message], ...]} (errors only, warnings dropped).
require('@kusto/language-service-next/bridge.min.js');
require('@kusto/language-service-next/Kusto.Language.Bridge.min.js');
const fs = require('fs');
const readline = require('readline');
const K = Kusto.Language, sym = K.Symbols;

const schemas = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const tables = Object.entries(schemas).map(([name, columns]) =>
  sym.TableSymbol.From('(' + columns.map(([c, t]) => `['${c}']:${t}`).join(', ') + ')').WithName(name));
const db = new sym.DatabaseSymbol.$ctor1('db', tables, false);
const globals = K.GlobalState.Default.WithCluster(new sym.ClusterSymbol.$ctor1('local', [db], false)).WithDatabase(db);

const lines = readline.createInterface({ input: process.stdin });
lines.on('line', (line) => {
  if (!line.trim()) return;
  const query = JSON.parse(line);
  const diagnostics = K.KustoCode.ParseAndAnalyze(query.text, globals).GetDiagnostics();
  const errors = [];
  for (let i = 0; i < diagnostics.Count; i++) {
    const d = diagnostics.getItem(i);
    if (d.Severity === 'Error') errors.push([d.Start, d.Message]);
  }
  process.stdout.write(JSON.stringify({ id: query.id, errors }) + '\n');
});
