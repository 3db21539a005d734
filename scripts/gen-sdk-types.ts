// Writes sdk/args.generated.ts: the SDK's public Args types as plain TypeScript
// interfaces, derived from the zod input fields of every resource runtime in
// provider/kinds/index.ts (`resources`), with the doc comments written beside those
// fields, plus the names of every resource's outputs.
//
// Why: zod is the one source of types (DESIGN.md §2), but the SDK's published
// .d.ts must not mention zod: a user's project (Pulumi's template tsconfig, no
// skipLibCheck, no esModuleInterop) would type-check zod's own declaration files.
//
// Regenerate after changing any input field (or a doc comment on one):
//   npm run gen:sdk
// test/unit/sdk-types.test.ts fails while the committed file is stale.
//
// Types come from walking the zod schemas at run time (input side: a default makes
// a field optional, a transform takes its input type); doc comments come from the
// TypeScript compiler's view of the same objects (each runtime's `inputFields`).
import * as fs from "node:fs";
import * as path from "node:path";
import * as ts from "typescript";
import type { z } from "zod";
import { resources } from "../provider/kinds";

export const GENERATED_PATH = "sdk/args.generated.ts";
export const REGENERATE_COMMAND = "npm run gen:sdk";

type Zod = z.core.$ZodType;

/** A nested object that gets an interface of its own (shared by several fields, or recursive). */
interface Named {
  name: string;
  schema: Zod;
  tsType: ts.Type | undefined;
}

class Generator {
  private readonly checker: ts.TypeChecker;
  private readonly named = new Map<Zod, Named>();
  private readonly names = new Set<string>();
  private readonly pending: Named[] = [];
  private readonly seen = new Map<Zod, number>();

  constructor(private readonly root: string) {
    const program = ts.createProgram([path.join(root, "provider/kinds/index.ts"), path.join(root, "sdk/index.ts")], {
      target: ts.ScriptTarget.ES2022,
      module: ts.ModuleKind.CommonJS,
      moduleResolution: ts.ModuleResolutionKind.Node10,
      strict: true,
      esModuleInterop: true,
      skipLibCheck: true,
      noEmit: true,
      types: ["node"],
    });
    this.checker = program.getTypeChecker();
    this.program = program;
  }

  private readonly program: ts.Program;

  /** The type of `resources` in provider/kinds/index.ts, as the compiler sees it. */
  private resourcesType(): ts.Type {
    const file = this.program.getSourceFile(path.join(this.root, "provider/kinds/index.ts"));
    if (!file) throw new Error("provider/kinds/index.ts not found");
    const sym = this.checker.getSymbolAtLocation(file);
    const exp = sym && this.checker.getExportsOfModule(sym).find((s) => s.name === "resources");
    if (!exp) throw new Error("provider/kinds/index.ts must export `resources`");
    return this.checker.getTypeOfSymbol(exp);
  }

  private prop(t: ts.Type | undefined, name: string): ts.Type | undefined {
    if (!t) return undefined;
    const s = this.checker.getPropertyOfType(t, name);
    return s ? this.checker.getTypeOfSymbol(s) : undefined;
  }

  /** The TS type of a zod schema's `_zod.def.<key>` (to follow the schema's structure). */
  private defPart(t: ts.Type | undefined, key: string): ts.Type | undefined {
    return this.prop(this.prop(this.prop(t, "_zod"), "def"), key);
  }

  private doc(t: ts.Type | undefined, key: string): string {
    const s = t && this.checker.getPropertyOfType(t, key);
    return s ? ts.displayPartsToString(s.getDocumentationComment(this.checker)).trim() : "";
  }

  /**
   * The TS type to read an object schema's field docs from: its shape, or (for a
   * schema declared as `z.ZodType<T>`, e.g. a recursive one) its type T.
   */
  private docSource(tsType: ts.Type | undefined): ts.Type | undefined {
    const candidates = [this.defPart(tsType, "shape"), this.prop(tsType, "_input"), this.prop(tsType, "_output")];
    return candidates.find((t) => t && this.checker.getPropertiesOfType(t).length > 0);
  }

  /** Counts how often each object schema is reached, to name the shared ones. */
  private count(schema: Zod, stack: Set<Zod> = new Set()): void {
    const def = (schema as any)._zod.def;
    if (def.type === "object") {
      this.seen.set(schema, (this.seen.get(schema) ?? 0) + (stack.has(schema) ? 2 : 1));
      if (stack.has(schema)) return;
      stack.add(schema);
      for (const f of Object.values(def.shape)) this.count(f as Zod, stack);
      stack.delete(schema);
      return;
    }
    for (const inner of children(schema)) this.count(inner, stack);
  }

  private nameFor(schema: Zod, field: string, tsType: ts.Type | undefined): string {
    const existing = this.named.get(schema);
    if (existing) return existing.name;
    let name = capitalize(field) + "Args";
    for (let i = 2; this.names.has(name); i++) name = `${capitalize(field)}${i}Args`;
    const n = { name, schema, tsType };
    this.named.set(schema, n);
    this.names.add(name);
    this.pending.push(n);
    return name;
  }

  /** The plain TypeScript type of a schema's input, every level wrapped in pulumi.Input. */
  private typeOf(schema: Zod, tsType: ts.Type | undefined, field: string, where: string): string {
    const def = (schema as any)._zod.def;
    switch (def.type) {
      case "string":
      case "number":
      case "boolean":
        return def.type;
      case "literal":
        return def.values.map((v: unknown) => JSON.stringify(v)).join(" | ");
      case "enum":
        return Object.values(def.entries).map((v) => JSON.stringify(v)).join(" | ");
      case "optional":
      case "default":
      case "prefault":
      case "readonly":
        return this.typeOf(def.innerType, this.defPart(tsType, "innerType"), field, where);
      case "nullable":
        return `${this.typeOf(def.innerType, this.defPart(tsType, "innerType"), field, where)} | null`;
      case "pipe":
        return this.typeOf(def.in, this.defPart(tsType, "in"), field, where);
      case "lazy": {
        const getter = this.defPart(tsType, "getter");
        const sig = getter?.getCallSignatures()[0];
        return this.typeOf(def.getter(), sig ? this.checker.getReturnTypeOfSignature(sig) : undefined, field, where);
      }
      case "array":
        return `pulumi.Input<${this.typeOf(def.element, this.defPart(tsType, "element"), field, where)}>[]`;
      case "record": {
        // Only string keys have a plain form that agrees with z.input (an enum key makes zod's type exhaustive).
        if (def.keyType._zod.def.type !== "string") break;
        return `{ [key: string]: pulumi.Input<${this.typeOf(def.valueType, this.defPart(tsType, "valueType"), field, where)}> }`;
      }
      case "union": {
        const opts = this.defPart(tsType, "options");
        return def.options
          .map((o: Zod, i: number) => {
            const text = this.typeOf(o, opts && this.prop(opts, String(i)), field, where);
            return text.includes(" | ") ? `(${text})` : text;
          })
          .join(" | ");
      }
      case "object": {
        const shapeType = this.docSource(tsType);
        if ((this.seen.get(schema) ?? 0) > 1) return this.nameFor(schema, field, shapeType);
        return this.objectLiteral(schema, shapeType, where);
      }
    }
    throw new Error(`${where}: zod type "${def.type}" has no plain TypeScript form in scripts/gen-sdk-types.ts; teach typeOf() about it`);
  }

  private members(schema: Zod, shapeType: ts.Type | undefined, where: string, indent: string): string[] {
    const shape = (schema as any)._zod.def.shape as Record<string, Zod>;
    const lines: string[] = [];
    for (const [key, field] of Object.entries(shape)) {
      const doc = this.doc(shapeType, key);
      if (!doc) throw new Error(`${where}.${key} has no doc comment: document every public field (a /** … */ comment on the zod field)`);
      lines.push(...docComment(doc, indent));
      const optional = isOptionalInput(field) ? "?" : "";
      lines.push(`${indent}${key}${optional}: pulumi.Input<${this.typeOf(field, this.prop(shapeType, key), key, `${where}.${key}`)}>;`);
    }
    return lines;
  }

  private objectLiteral(schema: Zod, shapeType: ts.Type | undefined, where: string): string {
    return ["{", ...this.members(schema, shapeType, where, "  "), "}"].join("\n");
  }

  generate(): string {
    const rt = this.resourcesType();
    const out: string[] = [];
    const byResource: string[] = [];
    const outputs: string[] = [];
    for (const runtime of Object.values(resources)) for (const f of Object.values(runtime.inputFields as Record<string, Zod>)) this.count(f);
    for (const [resource, runtime] of Object.entries(resources)) {
      const fieldsType = this.prop(this.prop(rt, resource), "inputFields");
      const fields = runtime.inputFields as Record<string, Zod>;
      if (!fieldsType || this.checker.getPropertiesOfType(fieldsType).length === 0)
        throw new Error(`resources.${resource}.inputFields has no statically known fields: declare its runtime with \`satisfies ResourceRuntime\``);
      const fake = { _zod: { def: { type: "object", shape: fields } } } as unknown as Zod;
      out.push(`/** Inputs of {@link ${resource}}. */`);
      out.push(`export interface ${resource}Args {`, ...this.members(fake, fieldsType, resource, "  "), "}", "");
      byResource.push(`  ${resource}: ${resource}Args;`);
      outputs.push(`  ${resource}: [${this.outputNames(resource, Object.keys(fields)).map((n) => JSON.stringify(n)).join(", ")}],`);
    }
    // Named (shared or recursive) objects, generated as they are first met.
    const namedText: string[] = [];
    for (let i = 0; i < this.pending.length; i++) {
      const n = this.pending[i];
      namedText.push(
        n.name === "ConnectionArgs"
          ? '/** How to reach a host over SSH (see README "Connection"). Mark credentials as secrets. */'
          : `/** Type of a nested \`${n.name.replace(/\d*Args$/, "").replace(/^./, (c) => c.toLowerCase())}\` input. */`,
      );
      namedText.push(`export interface ${n.name} {`, ...this.members(n.schema, n.tsType, n.name, "  "), "}", "");
    }
    return [
      "// GENERATED by scripts/gen-sdk-types.ts from the zod input fields in provider/ — do not edit.",
      `// Regenerate after changing an input field or its doc comment: ${REGENERATE_COMMAND}`,
      "// (test/unit/sdk-types.test.ts fails while this file is stale.)",
      'import type * as pulumi from "@pulumi/pulumi";',
      "",
      ...out,
      ...namedText,
      "/** Args type of each resource class, by class name. */",
      "export interface ArgsByResource {",
      ...byResource,
      "}",
      "",
      "/**",
      " * Names of each resource's outputs: its inputs (as the kernel reports them) and",
      " * the `pulumi.Output` members its class in sdk/ declares. Registered with every",
      " * resource so the SDK resolves them.",
      " */",
      "export const OUTPUT_NAMES: { readonly [R in keyof ArgsByResource]: readonly string[] } = {",
      ...outputs,
      "};",
      "",
    ].join("\n");
  }

  /** Input fields (but the connection, which is an input only) and the class's declared Output members. */
  private outputNames(resource: string, inputs: string[]): string[] {
    const file = this.program.getSourceFile(path.join(this.root, "sdk/index.ts"));
    const mod = file && this.checker.getSymbolAtLocation(file);
    let cls = mod && this.checker.getExportsOfModule(mod).find((s) => s.name === resource);
    if (!cls) throw new Error(`sdk/index.ts must export a class ${resource} (a resource of provider/kinds/index.ts)`);
    if (cls.flags & ts.SymbolFlags.Alias) cls = this.checker.getAliasedSymbol(cls);
    const instance = this.checker.getDeclaredTypeOfSymbol(cls);
    const declared = this.checker
      .getPropertiesOfType(instance)
      .filter((p) =>
        (p.declarations ?? []).some(
          (d) =>
            ts.isPropertyDeclaration(d) &&
            (ts.getCombinedModifierFlags(d) & ts.ModifierFlags.Ambient) !== 0 &&
            path.relative(path.join(this.root, "sdk"), d.getSourceFile().fileName).split(path.sep).length === 1,
        ),
      )
      .map((p) => p.name);
    const names = new Set([...inputs.filter((f) => f !== "connection"), ...declared]);
    return [...names];
  }
}

function children(schema: Zod): Zod[] {
  const def = (schema as any)._zod.def;
  switch (def.type) {
    case "optional":
    case "default":
    case "prefault":
    case "readonly":
    case "nullable":
      return [def.innerType];
    case "pipe":
      return [def.in];
    case "lazy":
      return [def.getter()];
    case "array":
      return [def.element];
    case "union":
      return def.options;
    case "record":
      return [def.valueType];
    default:
      return [];
  }
}

/** A field the user may leave out: optional, or with a default. */
function isOptionalInput(schema: Zod): boolean {
  const def = (schema as any)._zod.def;
  if (def.type === "optional" || def.type === "default" || def.type === "prefault") return true;
  if (def.type === "pipe") return isOptionalInput(def.in);
  return false;
}

function capitalize(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}

function docComment(text: string, indent: string): string[] {
  const lines = text.split("\n");
  if (lines.length === 1) return [`${indent}/** ${text.replace(/\*\//g, "*\\/")} */`];
  return [`${indent}/**`, ...lines.map((l) => `${indent} * ${l.replace(/\*\//g, "*\\/")}`.trimEnd()), `${indent} */`];
}

const REPO_ROOT = findRepoRoot(__dirname);

function findRepoRoot(from: string): string {
  for (let dir = from; dir !== path.dirname(dir); dir = path.dirname(dir)) {
    const pkg = path.join(dir, "package.json");
    if (fs.existsSync(pkg) && JSON.parse(fs.readFileSync(pkg, "utf8")).name === "pulumi-netdev") return dir;
  }
  throw new Error(`no pulumi-netdev package.json above ${from}`);
}

/** The text sdk/args.generated.ts should have for the current sources. */
export function generateSdkTypes(root = REPO_ROOT): string {
  return new Generator(root).generate();
}

if (require.main === module) {
  const target = path.join(REPO_ROOT, GENERATED_PATH);
  const text = generateSdkTypes();
  const before = fs.existsSync(target) ? fs.readFileSync(target, "utf8") : "";
  if (process.argv.includes("--check")) {
    if (before !== text) {
      console.error(`${GENERATED_PATH} is stale: run \`${REGENERATE_COMMAND}\``);
      process.exit(1);
    }
  } else {
    fs.writeFileSync(target, text);
    console.log(before === text ? `${GENERATED_PATH} is up to date` : `wrote ${GENERATED_PATH}`);
  }
}
