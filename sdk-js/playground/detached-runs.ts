/**
 * The Account tab's "Detached runs" card: the account's most recent
 * detached executions (`ListExecutions`), newest first, with their state,
 * outcome and time. Built with DOM calls only (the page's CSP forbids
 * inline styles and scripts).
 */
import type { ExecutionListing, WasmWizClient } from "../src/web.js";
import { $, h } from "./dom.js";

/** How many runs the card lists (one page). */
export const RECENT_RUNS = 20;

/** `2026-12-02 05:01` in UTC, as the rest of the Account tab shows times. */
function fmtTime(d: Date): string {
  return d.toISOString().slice(0, 16).replace("T", " ");
}

/** Lower case, spaces for underscores: `EXIT_NONZERO` → `exit nonzero`. */
function words(name: string): string {
  return name.toLowerCase().replace(/_/g, " ");
}

/** The outcome cell: empty until the run has ended. */
function outcomeText(run: ExecutionListing): string {
  return run.outcomeName === "UNSPECIFIED" ? "—" : words(run.outcomeName);
}

/** The state badge's class: ok when it finished with success, bad when it failed or was cancelled. */
function stateClass(run: ExecutionListing): string {
  if (run.stateName === "CANCELLED") return "status bad";
  if (run.stateName !== "FINISHED") return "status";
  return run.outcomeName === "SUCCESS" ? "status ok" : "status bad";
}

/** Fills the table from one page of runs. */
export function renderDetachedRuns(runs: ExecutionListing[]): void {
  const body = $<HTMLTableElement>("runs-table").tBodies[0]!;
  body.replaceChildren(
    ...runs.map((run) =>
      h(
        "tr",
        { "data-execution-id": run.executionId },
        h("td", {}, h("code", {}, run.executionId)),
        h("td", {}, h("span", { class: stateClass(run) }, words(run.stateName))),
        h("td", {}, outcomeText(run)),
        h("td", {}, h("time", { datetime: run.createdAt.toISOString() }, fmtTime(run.createdAt))),
      ),
    ),
  );
  if (!runs.length) body.append(h("tr", {}, h("td", { colspan: "4" }, "No detached runs yet.")));
  $("runs-status").textContent = runs.length
    ? `${runs.length} most recent detached run${runs.length === 1 ? "" : "s"}, newest first.`
    : "No detached runs yet: submit one with client.submit() from an SDK.";
}

/** Loads the most recent runs into the card; errors go to the caller. */
export async function loadDetachedRuns(client: WasmWizClient): Promise<void> {
  const card = $("runs-card");
  card.setAttribute("aria-busy", "true");
  try {
    const page = await client.listExecutions({ pageSize: RECENT_RUNS });
    renderDetachedRuns(page.executions);
  } finally {
    card.removeAttribute("aria-busy");
  }
}
