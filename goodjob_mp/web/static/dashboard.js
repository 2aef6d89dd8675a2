// goodjob_mp dashboard: the only script. Select-all and confirmations; pages work without it.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  var all = document.getElementById("select-all");
  if (all) {
    all.addEventListener("change", function () {
      document.querySelectorAll('input[name="job_id"]').forEach(function (box) {
        box.checked = all.checked;
      });
    });
  }
  document.querySelectorAll("button[data-confirm]").forEach(function (button) {
    button.addEventListener("click", function (event) {
      var scope = button.form && button.form.querySelector('select[name="scope"]');
      var text = button.getAttribute("data-confirm");
      if (scope && scope.value === "all") {
        text = text.replace("these jobs", "EVERY job matching the filter");
      }
      if (!window.confirm(text)) {
        event.preventDefault();
      }
    });
  });
});
