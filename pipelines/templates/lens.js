(function () {
  "use strict";
  var drawn = document.querySelectorAll("svg[data-chart], svg[data-map]");
  for (var i = 0; i < drawn.length; i++) {
    var marks = drawn[i].querySelectorAll("path, polyline, circle, rect, line").length;
    drawn[i].setAttribute("data-marks", String(marks));
    drawn[i].setAttribute("data-rendered", marks > 0 ? "true" : "empty");
  }
  var boxes = document.querySelectorAll("input[data-layer]");
  for (var j = 0; j < boxes.length; j++) {
    boxes[j].addEventListener("change", function (event) {
      var layer = document.getElementById(event.target.getAttribute("data-layer"));
      if (layer) { layer.style.display = event.target.checked ? "" : "none"; }
    });
  }
  document.body.setAttribute("data-scroll-width", String(document.documentElement.scrollWidth));
  document.body.setAttribute("data-lens-ready", "true");
})();
