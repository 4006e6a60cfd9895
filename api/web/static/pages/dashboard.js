// The dashboard's charts (Chart.js draws on a canvas: labels are never markup). The
// figures come as JSON in #dashboard-data.
(() => {
  const page = JSON.parse(document.getElementById("dashboard-data").textContent);
  const said = page.said;
  const workload = page.workload;
  const roles = Object.keys(workload);
  new Chart(document.getElementById("workload"), {
    type: "bar",
    data: {labels: roles, datasets: [
      {label: said.open, data: roles.map((r) => workload[r].open)},
      {label: said.completed, data: roles.map((r) => workload[r].completed)},
      {label: said.overdue, data: roles.map((r) => workload[r].overdue)},
    ]},
    options: {animation: false},
  });
  const steps = page.steps;
  new Chart(document.getElementById("waiting"), {
    type: "bar",
    data: {labels: steps.map((s) => s.name || s.element_id), datasets: [
      {label: said.wait_p50, data: steps.map((s) => (s.wait_p50 || 0) / 3600)},
      {label: said.wait_p90, data: steps.map((s) => (s.wait_p90 || 0) / 3600)},
    ]},
    options: {animation: false, indexAxis: "y"},
  });
})();
