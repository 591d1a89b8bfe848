/**
 * xterm.js writes its theme and cell-size rules into `<style>` elements
 * (`textContent`), which the playground's CSP (`style-src 'self'`, no
 * inline styles) blocks. This sends the text of `<style>` elements into
 * constructed stylesheets instead, which the CSP does not govern, so the
 * policy stays strict. The playground has no `<style>` elements of its own.
 */
const sheets = new WeakMap<HTMLStyleElement, { sheet: CSSStyleSheet; text: string }>();

/** Installs the redirection once (a no-op where constructed stylesheets are missing). */
export function routeStyleElementsToConstructedSheets(): void {
  if (!("adoptedStyleSheets" in Document.prototype) || typeof CSSStyleSheet.prototype.replaceSync !== "function") return;
  if (Object.prototype.hasOwnProperty.call(HTMLStyleElement.prototype, "textContent")) return;
  const native = Object.getOwnPropertyDescriptor(Node.prototype, "textContent");
  if (!native?.get || !native.set) return;
  const nativeGet = native.get;
  Object.defineProperty(HTMLStyleElement.prototype, "textContent", {
    configurable: true,
    enumerable: native.enumerable ?? true,
    get(this: HTMLStyleElement): string | null {
      return sheets.get(this)?.text ?? (nativeGet.call(this) as string | null);
    },
    set(this: HTMLStyleElement, value: string | null) {
      let entry = sheets.get(this);
      if (!entry) {
        entry = { sheet: new CSSStyleSheet(), text: "" };
        sheets.set(this, entry);
        document.adoptedStyleSheets = [...document.adoptedStyleSheets, entry.sheet];
      }
      entry.text = value ?? "";
      entry.sheet.replaceSync(entry.text);
    },
  });
}
