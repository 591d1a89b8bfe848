/**
 * xterm.js puts its theme and cell-size rules in `<style>` elements it
 * creates (`document.createElement("style")`, then `textContent`), which the
 * playground's CSP (`style-src 'self'`, no inline styles) blocks, even empty.
 * It also sets `style` attributes. This makes such elements inert stand-ins whose text goes into a
 * constructed stylesheet instead (not governed by the CSP), so the policy
 * stays strict, and turns `style` attributes into the same CSSOM
 * declarations (allowed). The playground has no `<style>` elements of its own.
 */

/** Installs the redirection once (a no-op where constructed stylesheets are missing). */
export function routeStyleElementsToConstructedSheets(): void {
  if (!("adoptedStyleSheets" in Document.prototype) || typeof CSSStyleSheet.prototype.replaceSync !== "function") return;
  const marker = Symbol.for("wasmwiz.styleRedirect");
  const proto = Document.prototype as unknown as Record<symbol, boolean>;
  if (proto[marker]) return;
  proto[marker] = true;
  // xterm also sets `style` attributes; the same declarations through CSSOM are allowed.
  const nativeSetAttribute = Element.prototype.setAttribute;
  Element.prototype.setAttribute = function (this: Element, name: string, value: string): void {
    if (name.toLowerCase() === "style" && this instanceof HTMLElement) {
      this.style.cssText = value;
      return;
    }
    nativeSetAttribute.call(this, name, value);
  };
  const nativeCreate = Document.prototype.createElement;
  Document.prototype.createElement = function (this: Document, tag: string, options?: ElementCreationOptions): HTMLElement {
    if (tag.toLowerCase() !== "style") return nativeCreate.call(this, tag, options);
    return constructedStyle(this, nativeCreate.call(this, "wasmwiz-style"));
  } as typeof Document.prototype.createElement;
}

/** An element that holds no text: what is written to it becomes a constructed sheet of `doc`. */
function constructedStyle(doc: Document, el: HTMLElement): HTMLElement {
  el.hidden = true;
  const sheet = new CSSStyleSheet();
  let text = "";
  doc.adoptedStyleSheets = [...doc.adoptedStyleSheets, sheet];
  Object.defineProperty(el, "textContent", {
    configurable: true,
    get: () => text,
    set: (value: string | null) => {
      text = value ?? "";
      sheet.replaceSync(text);
    },
  });
  const nativeRemove = el.remove.bind(el);
  el.remove = () => {
    doc.adoptedStyleSheets = doc.adoptedStyleSheets.filter((s) => s !== sheet);
    nativeRemove();
  };
  return el;
}
