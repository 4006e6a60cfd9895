// Dashboard page: Chart.js with every controller, element and scale registered.
// Exposes window.Chart (the Chart.js constructor, as its UMD build does).

import Chart from 'chart.js/auto';

window.Chart = Chart;
