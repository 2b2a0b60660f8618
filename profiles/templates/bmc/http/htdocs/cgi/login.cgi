<html>
<head>
<meta http-equiv="Content-Type" content="text/html; charset=utf-8">
<meta http-equiv="refresh" content="0; url=/index.html?error=1">
<title><condata source="databus" key="sysName"/></title>
</head>
<body>
<script type="text/javascript">self.location = "/index.html?error=1";</script>
</body>
</html>
