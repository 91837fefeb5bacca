/* Sortable tables for the ricord-bench leaderboard: click (or Enter/Space on) a header.
   Cells carry their sort key in data-sort (numbers as plain decimals); empty keys sort last.
   Plain ES5-compatible code, no dependencies, nothing fetched. */
(function () {
  "use strict";

  function cellKey(row, column) {
    var cell = row.cells[column];
    if (!cell) { return ""; }
    var key = cell.getAttribute("data-sort");
    return key === null ? cell.textContent.trim() : key;
  }

  function compare(a, b, numeric) {
    if (a === "" || b === "") { return a === b ? 0 : (a === "" ? 1 : -1); }
    if (numeric) { return parseFloat(a) - parseFloat(b); }
    return a.localeCompare(b, undefined, { numeric: true, sensitivity: "base" });
  }

  function sortTable(table, header, column) {
    var numeric = header.getAttribute("data-type") === "number";
    var ascending = header.getAttribute("aria-sort") !== "ascending";
    var headers = table.tHead.rows[0].cells;
    for (var i = 0; i < headers.length; i++) { headers[i].removeAttribute("aria-sort"); }
    header.setAttribute("aria-sort", ascending ? "ascending" : "descending");
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    rows.forEach(function (row, index) { row.setAttribute("data-position", String(index)); });
    rows.sort(function (left, right) {
      var a = cellKey(left, column), b = cellKey(right, column);
      var order = compare(a, b, numeric);
      if (a !== "" && b !== "" && !ascending) { order = -order; }
      return order || (parseInt(left.getAttribute("data-position"), 10) -
                       parseInt(right.getAttribute("data-position"), 10));
    });
    rows.forEach(function (row) { body.appendChild(row); });
    table.classList.add("resorted");
  }

  function setUp(table) {
    if (!table.tHead || !table.tBodies.length) { return; }
    var headers = table.tHead.rows[0].cells;
    Array.prototype.forEach.call(headers, function (header, column) {
      header.tabIndex = 0;
      header.title = "Sort by this column";
      header.addEventListener("click", function () { sortTable(table, header, column); });
      header.addEventListener("keydown", function (event) {
        if (event.key === "Enter" || event.key === " ") {
          event.preventDefault();
          sortTable(table, header, column);
        }
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    Array.prototype.forEach.call(document.querySelectorAll("table.sortable"), setUp);
  });
}());
