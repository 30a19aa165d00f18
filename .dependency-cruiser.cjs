/**
 * One floor per role: each layer imports only from the layers before it in LAYERS (see DESIGN.md, "Folders").
 * `npm run lint:layers` fails on the first import that runs up a floor.
 */
const LAYERS = ["lib", "product", "backup", "appliance", "installer", "cli"];

const upward = LAYERS.slice(0, -1).map((layer, i) => ({
  name: `${layer}-imports-above`,
  comment: `${layer}/ imports only from ${LAYERS.slice(0, i + 1).join(", ")}/ — move the shared piece down, or the caller up`,
  severity: "error",
  from: { path: `^${layer}/` },
  to: { path: `^(${LAYERS.slice(i + 1).join("|")})/` },
}));

module.exports = {
  forbidden: [
    ...upward,
    {
      name: "migrations-import-lib-only",
      comment: "a migration runs inside node-pg-migrate on any release: it may use lib/ only",
      severity: "error",
      from: { path: "^migrations/" },
      to: { path: `^(${LAYERS.slice(1).join("|")})/` },
    },
    {
      name: "no-test-code-in-the-product",
      comment: "test/ and bench/ may import anything; nothing ships imports them",
      severity: "error",
      from: { path: `^(${LAYERS.join("|")}|bin|migrations)/` },
      to: { path: "^(test|bench)/" },
    },
    {
      name: "no-circular",
      comment: "a cycle ties two files into one: break it with a smaller shared piece",
      severity: "error",
      from: { path: `^(${LAYERS.join("|")})/` },
      to: { circular: true },
    },
  ],
  options: {
    doNotFollow: { path: "node_modules" },
    exclude: { path: "^(node_modules|dist)/" },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: "tsconfig.json" },
    enhancedResolveOptions: { exportsFields: ["exports"], conditionNames: ["import", "require", "node", "default"] },
  },
};
