// The example sources, imported as text (esbuild's text loader; see example-sources.ts).
declare module "*.c" {
  const text: string;
  export default text;
}
declare module "*.rs" {
  const text: string;
  export default text;
}
declare module "*.wat" {
  const text: string;
  export default text;
}
